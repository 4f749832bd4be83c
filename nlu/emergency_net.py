"""The life-safety keyword net: does a resident's message describe a danger to life right now?

Plain Python (no Rasa, no app imports): the Rasa component ``nlu.components.emergency.EmergencyOverride``
runs it on every message after the OpenCC normaliser, and ``tests/test_emergency.py`` runs it alone. It lives
outside nlu/components/ on purpose: it is read at run time and is no input of the trained model, so a
keyword edit needs no retraining (scripts/rasa-train.sh hashes nlu/components/, not this file).

It is deliberately over-inclusive: a miss can cost a life, a false alarm costs the resident one extra
sentence (the emergency numbers) before they carry on. How a message is read:

1. ``normalize``: lower case, full-width to half-width, and a small Traditional -> Simplified map of the
   characters the patterns use (in Rasa OpenCC has already done this; the map keeps the net right alone).
2. ``MASKS``: phrases that contain a danger word but are not a danger are blanked out first
   (打不着火, 防走失, 跳楼价, 打人工, 有心脏病, 中风以后 ...).
3. ``PATTERNS``: regexes per kind (fire, gas, medical, violence, missing, self_harm, and ``unknown`` for a
   bare 救命). Each hit is dropped when the same clause says it is hypothetical or prevention just before
   it (如果 / 万一 / 防止 / 容易 ...; 怕 / 担心 except for violence and self-harm) or negated right before it
   (没 / 没有 / 不是).
4. Weak patterns (火灾, 冒烟, 浓烟, 爆炸, 漏气 ...) are also dropped when the message has a guard word of an
   ordinary request (费 / 缴 / 灭火器 / 消防通道 / 演练 / 知识 / 培训 / 检查 / 烧烤 ...). Strong patterns
   (着火了, 煤气泄漏, 晕倒, 叫不醒, 拿刀, 家暴, 孩子丢了, 不想活了 ...) are never suppressed by a guard.

The kinds map to the catalogue's ``tickets/data/emergencies.yml`` (numbers and first replies); the test
``tests/test_emergency.py`` keeps the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from re import Pattern

KINDS: tuple[str, ...] = ("fire", "gas", "medical", "violence", "missing", "self_harm")
UNKNOWN = "unknown"  # a danger word that names no kind (救命, 出人命了): every number is given
MULTIPLE = "multiple"  # several kinds that need different numbers (被砍了 流了好多血): every number

# Traditional characters the patterns and guards use -> Simplified (OpenCC does this in Rasa).
_T2S = str.maketrans(
    "氣洩著燒煙災暈沒臟風發來動殺搶傷樓輕丟見蹤兒爺媽電車開關燈鬥毆嚇脅綁報醫護險難過後費繳滅練習識訓檢爐鍋頭腦觸斷這個們麼裡"
    "說話還嗎會從應趕緊幫為對鄰區號單層門廳廚體歲癡藥農繩結絕裝響聞滿廁陽臺場環熱竊賊闖腳讓歡紮縫帶馬點網預問題學講課療據顱腫"
    "黃轉紅邊雙誰兩遊戲燙孫禍癱擊驚絞臉鐵磚鍬錘槍強姦褻禮揚復潑壞進隨聯係繫賣販塗認礙盡殘脈橋頂義勁敵勢竄線閘霧嗆雞搖幾寶閨婦"
    "脣錯貨撥給鑰錢證東資覺靜庫糧飯喪屍亂嚴龍戶鐘錶燃氫樣麵頓",
    "气泄着烧烟灾晕没脏风发来动杀抢伤楼轻丢见踪儿爷妈电车开关灯斗殴吓胁绑报医护险难过后费缴灭练习识训检炉锅头脑触断这个们么里"
    "说话还吗会从应赶紧帮为对邻区号单层门厅厨体岁痴药农绳结绝装响闻满厕阳台场环热窃贼闯脚让欢扎缝带马点网预问题学讲课疗据颅肿"
    "黄转红边双谁两游戏烫孙祸瘫击惊绞脸铁砖锹锤枪强奸亵礼扬复泼坏进随联系系卖贩涂认碍尽残脉桥顶义劲敌势窜线闸雾呛鸡摇几宝闺妇"
    "唇错货拨给钥钱证东资觉静库粮饭丧尸乱严龙户钟表燃氢样面顿",
)
_SPACE = re.compile(r"\s+")
_CLAUSE_END = ",。.!?;、~…\n \u3000"


def normalize(text: str) -> str:
    """Lower case, full-width ASCII to half-width, the Traditional characters above to Simplified, runs of
    white space to one space. Same length as the input except for the white space."""
    half = "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in text or "")
    return _SPACE.sub(" ", half.translate(_T2S).lower()).strip()


# -------------------------------------------------------------------------------------------- vocabulary

_GAS = r"(?:煤气|燃气|天然气|天燃气|液化气|石油气|瓦斯|沼气|煤汽|燃汽|然气|气罐|煤气罐|液化气罐|钢瓶)"
_KID = r"(?:孩子|小孩子?|小朋友|儿子|女儿|闺女|伢|娃娃?|宝宝|孙子|孙女|外孙女?|崽)"
_ELDER = (
    r"(?:老人家?|爹爹|婆婆|我妈|我爸|老妈|老爸|爸爸|妈妈|父亲|母亲|奶奶|爷爷|外婆|外公|姥姥|姥爷|老爷子"
    r"|老太太|老太|老头|老伴|家人|家里人|老公|老婆|丈夫|妻子|媳妇)"
)
_PERSON = rf"(?:{_KID}|{_ELDER})"
_BEFORE_MISSING = r"(?:我家的?|我的|我们家的?|自家的?|家里的?|我)"
# Between a person and what happened to them: a few characters (spaces too: voice typing), but not an object
# of theirs (孩子的书包丢了, 孩子书包不见了).
_FILLER = r"(?:(?!手机|钥匙|书包|证|卡|钱|包|车|狗|猫|鞋|衣|本子|作业|东西|药|电话)[^的,。!?;]){0,10}"
_SOME = r"[^,。!?;]{0,6}"  # a few characters inside one clause

# (kind, strong, pattern). Strong hits are never suppressed by a guard word.
_PATTERN_SPECS: tuple[tuple[str, bool, str], ...] = (
    # ---- gas: a leak, its smell, poisoning, a cylinder on fire
    (
        "gas",
        True,
        rf"{_GAS}{_SOME}(?:泄漏|泄露|泻漏|漏|味|臭|冲鼻|刺鼻|呛|中毒|爆炸|炸了|着火|起火|冒气|破了|断了)",
    ),
    (
        "gas",
        True,
        rf"(?:闻到|闻着|一股|好大的?|很大的?|满屋子?的?|满楼道的?|全是|都是){_SOME}{_GAS}(?:的)?(?:味|气味|臭)",
    ),
    (
        "gas",
        True,
        r"一氧化碳|(?:燃气|煤气|天然气)报警器\S{0,4}(?:响|叫|鸣)|gas leak|leaking gas|smells? (?:of )?gas",
    ),
    ("gas", False, r"漏气|臭鸡蛋味"),
    # ---- fire
    (
        "fire",
        True,
        r"着火|起火|失火|燃起来|烧起来|着了火|火烧|被火(?:围|困|烧)|困在火|冒火|窜火|(?:窜|冒)出?火苗|"
        r"火苗(?:窜|蹿|冒)|火势|火光|自燃|满屋子?(?:都是|全是)?烟(?!味)|"
        r"(?:楼道|屋里|家里|房间|楼里|走廊)里?(?:全|都)是烟(?!味)|烟(?:很|好|太)?大[^,。!?;]{0,3}(?:出不去|下不去|看不见|喘不)|"
        r"(?:电线|插座|插线板|电表|电箱|配电箱|电闸|电瓶车|电动车|电瓶|电池|充电器|充电宝)"
        r"[^,。!?;]{0,4}(?:冒火|冒烟|烧了|烧焦|起火|着火|爆炸|炸了)|"
        r"(?:楼道|屋里|家里|房间|楼里|走廊|厨房|卧室|客厅|楼上|楼下|隔壁|对面|窗户|窗口|阳台|车库|地下室|[一二三四五六七八九十\d]+楼)"
        r"里?(?:在|一直)?(?:往外)?冒(?:黑|浓|白)?烟|油锅(?:起火|着火|着了)|(?:烟感|烟雾报警器|火灾报警器)[^,。!?;]{0,4}(?:响|叫|鸣)|(?:打|叫|喊|拨)(?:了)?119|"
        r"(?:there'?s a |on )fire|\bfire!|burning",
    ),
    ("fire", False, r"火灾|冒烟|冒黑烟|冒浓烟|浓烟|爆炸|火警|救火|\bfire\b|smoke"),
    # ---- medical: someone collapsed, cannot breathe, bleeding, poisoned, fallen, hit by a car
    (
        "medical",
        True,
        r"晕倒|晕过去|(?:晕|昏)(?:到|道)(?:了|在)|昏倒|昏过去|昏迷|晕厥|休克|"
        r"(?:叫|喊)[^,。!?; ]{0,3}(?:不醒|不应|不答应)|"
        r"(?:叫|喊|推|拍|摇)了?(?:半天|几下|好久)?(?:都|也)?没(?:有)?反应|人没(?:有)?反应|"
        r"不省人事|人事不省|没(?:有)?了?呼吸|不喘气|没(?:有)?心跳|心跳(?:停|没)|心脏骤停|"
        r"(?:人|老人|爹爹|婆婆|妈|爸|他|她|孩子|伢|奶奶|爷爷|外婆|外公|好像|已经)[^,。!?;]{0,3}没(?:有)?气了|"
        r"断气|抽搐|抽风|惊厥|口吐白沫|翻白眼|心梗|心肌梗|心绞痛|胸口(?:剧痛|痛得|疼得|好痛|好疼)|"
        r"犯(?:了)?心脏病|心脏病(?:发作|犯了|发了|又犯|犯)|中风|脑梗|脑溢血|脑出血|嘴歪|口眼歪斜|"
        r"半边(?:身子)?(?:突然)?(?:不能动|动不了)|突然说不出话|大出血|血流不止|止不住血|"
        r"流了?(?:好多|很多|一地|一身|满地)的?血|出了?(?:好多|很多)血|满(?:头|脸|身|地)(?:都是|是)?血|"
        r"头破血流|喘不(?:上|过|来)气|呼吸困难|上不来气|透不过气|噎住|卡住了?(?:喉咙|气管)|窒息|"
        r"触电|被电(?:到|击|打)|溺水|落水|掉(?:进|到|下)(?:了)?(?:水|河|湖|江|塘|池|井)|"
        r"(?:摔倒|跌倒|摔了|绊倒|滑倒)了?[^,。!?;]{0,6}(?:起不来|爬不起来|站不起来|不能动|动不了|"
        r"不动了|流血|出血|昏|晕|叫不醒|没反应)|倒在地上|倒地|瘫在地上|躺在地上(?:不动|起不来)|"
        r"(?:摔|跌|坠)(?:下来|下去|下楼)|坠楼|"
        r"从[^,。!?;]{0,6}(?:楼|脚手架|梯子|窗|阳台|高处)[^,。!?;]{0,3}(?:掉|摔|跌)(?:下来|下去)|"
        rf"{_ELDER}{_FILLER}(?:摔倒|跌倒|摔了一跤|摔跤|摔了|滑倒)了|{_PERSON}{_FILLER}倒下了?|"
        r"快不行了|要不行了|中毒|吃错(?:了)?药|药吃多了|叫救护车|(?:打|叫|喊|拨)(?:了)?120|急救车|救护车快|"
        r"(?:高烧|发烧)[^,。!?;]{0,6}(?:抽|昏|叫不醒|没反应|说胡话|嘴唇发紫)|嘴唇发紫|"
        r"unconscious|not breathing|can'?t breathe|heart attack|stroke|bleeding|collapsed|ambulance",
    ),
    (
        "medical",
        False,
        rf"救护车|车祸|(?:{_PERSON}|人|我|他|她)[^,。!?;]{{0,3}}被[^,。!?;]{{0,4}}车(?:子)?(?:撞|碾|压)",
    ),
    # ---- violence and threats
    (
        "violence",
        True,
        r"打架|打群架|斗殴|互殴|打人|(?:打|踢|揍)(?:了)?我(?!家|们|[^,。!?;]{0,4}(?:电话|手机|号码|座机|微信|热线))|"
        r"挨打|殴打|砍人|砍伤|砍了|被砍|拿(?:着)?刀|持刀|提(?:着)?刀|举(?:着)?刀|动刀|掏(?:出)?刀|"
        r"(?:拿|提|举|抡|挥|掏)(?:着|起|了|出)?(?:把|根)?(?:菜刀|刀子|匕首|棍子|铁棍|斧头|砖头|铁锹|锤子|枪)|"
        r"捅(?:了|伤|人|我|死)|刺伤|杀人|杀(?:了)?(?:我|他|她|你|人)|要杀|杀死|"
        r"(?:弄|打|整)死(?:我|你|他|她|人)|抢劫|抢包|抢钱|持枪|有枪|开枪|绑架|劫持|强奸|性侵|"
        r"猥亵|非礼|家暴|家庭暴力|"
        r"(?:威胁|扬言|恐吓)[^,。!?;]{0,6}(?:杀|砍|弄死|打死|报复|泼|炸|伤害|放火|烧|捅)|"
        r"说要(?:杀|砍|弄死|打死|捅|放火|炸)|恐吓|"
        r"(?:小偷|贼|坏人|陌生人|有人)[^,。!?;]{0,4}(?:闯进|撬|翻进|爬进)(?:了)?(?:我家|家里|屋里|门|窗)|"
        r"入室|跟踪我|一直跟着我|尾随我|"
        r"knife|stabb|\bgun\b|attack(?:ed|ing)|beat(?:ing)? me|\bfight(?:ing)?\b",
    ),
    (
        "violence",
        False,
        r"打起来了|被(?:人)?(?:打|揍|踢|抢)(?!扰|折|针|卡|电话|了?针|上|出)|"
        r"被[^,。!?; ]{1,4}(?:打|揍|踢)(?:了|伤|得|成)(?![^,。!?;]{0,2}(?:电话|针|扰|折|卡))",
    ),
    # ---- missing persons: a child, an elder (with dementia or not), anyone who cannot be found
    (
        "missing",
        True,
        rf"{_PERSON}{_FILLER}(?:走丢|走失|不见了|失踪|找不到了|找不着了|寻不到|联系不上|"
        r"一夜没回|一晚上?没回|没回家|没回来|没有回来|跑丢|被人?抱走|被拐|被人?带走|不知道去哪儿?了|"
        r"不知道在哪儿?了|不知道跑哪(?:去)?了)|"
        rf"{_PERSON}(?:又|也|给|都)?(?:弄|搞)?丢了(?![^,。!?; ]{{0,3}}(?:钱|包|手机|钥匙|证|卡|东西|车|本|资料|材料|工作))|"
        rf"(?:找不到|找不着|寻不到|不见了|丢了|走丢了?){_BEFORE_MISSING}?{_PERSON}(?!的)|"
        r"(?:老年痴呆|痴呆|阿尔茨海默|失智|认知障碍|糊涂)[^。!?]{0,20}(?:没回来|没回家|不见了|找不到了|"
        r"找不着了|找不到人|不知道去哪|不知道在哪|不知道跑哪|走丢|走失|联系不上)|"
        r"失踪|被拐|拐卖|人贩子|"
        r"(?:child|kid|son|daughter|mother|father|mom|dad|grandma|grandpa|grandmother|grandfather) "
        r"(?:is |has gone |went |has been )?missing|missing (?:child|person|kid)|lost (?:my )?(?:child|kid|son|daughter)",
    ),
    # ---- self-harm and suicide (the resident or someone they see)
    (
        "self_harm",
        True,
        r"自杀|轻生|寻死|自尽|自残|割腕|割脉|上吊|跳楼|跳搂|跳河|跳江|跳湖|跳桥|"
        r"(?:要|想|准备)跳下去|站在(?:楼顶|天台|窗台|阳台|桥上|楼顶边)|坐在(?:楼顶|天台)(?:边)?|"
        r"不想活|活不下去|活着没(?:意思|意义|劲)|不如死了|想死|去死|死了算了|一了百了|想不开|"
        r"结束(?:自己的?)?(?:生命|一切)|了结(?:自己)|"
        r"喝(?:了)?(?:农药|敌敌畏|百草枯)|(?:吞|吃)(?:了)?(?:一瓶|一整瓶|整瓶|半瓶|很多|好多|一把|一大把|几十片)?安眠药|"
        r"(?:吃|吞)了(?:一瓶|一整瓶|整瓶|半瓶|很多|好多|一把|一大把|几十片)(?:的)?药|烧炭|开煤气自杀|"
        r"suicide|kill myself|end my life|want to die",
    ),
    # ---- no kind: a cry for help
    (
        UNKNOWN,
        True,
        r"救命|出人命了|快来人(?:啊|呀|哪|啦|!)|来人啊|(?:打|叫|喊|拨|报)(?:了)?110|\bhelp!|\bsos\b",
    ),
    (UNKNOWN, False, r"救救|emergency"),
)

# Blanked out before matching: a danger word inside an ordinary phrase.
_MASK_SPECS: tuple[str, ...] = (
    r"(?:打|点|烧|引)不(?:着|燃)火?|点不上火|打不着|着火点|防火|火烧眉毛|火烧云|(?:气得|心里|肚子里|眼睛)冒火",
    r"落水(?:管|口|斗)|抽风(?:机|口|扇)",
    r"(?:火灾|着火|起火|失火|燃气|煤气)(?:的)?(?:隐患|风险|保险|险|演练|演习|知识|预防|探测器|宣传|培训|安全)",
    r"消防(?:演练|演习|通道|栓|器材|设施|检查|安全|知识|培训|宣传|车道|门|队)|灭火器|灭火毯",
    r"(?:燃气|煤气|天然气)(?:费|表|灶|公司|开户|过户|报装|改管|管道改造|安检|卡|充值|缴费|价格|账单)"
    r"(?![^,。!?;]{0,6}(?:泄|漏|味|臭|中毒|爆炸|炸了|着火|起火|冒气|破了))",
    r"防走失|防丢|走失险|(?:走失|走丢)(?:过|手环|定位|卡|牌|险)|走丢过",
    r"跳楼价|跳楼(?:大)?甩卖|跳楼清仓|想死(?:你|您|我了|他|她|咱)|笑死|想不开心",
    r"打人工|打人家|人工客服",
    r"救命(?:钱|稻草|恩人|药)|(?:要|会|迟早|早晚|非得|得)出人命(?!了)",
    r"(?:有|得了?|患有?|得过)(?:冠)?心脏病(?![^,。!?;]{0,2}(?:发作|犯了|发了|又犯))",
    r"(?:中风|脑梗|脑溢血|心梗)(?:以后|后|过|了以后|之后|后遗症|病人|老人|患者|的老人|康复)",
    r"(?:有|得过)(?:中风|脑梗)",
    r"高烧不退|中毒(?:性)?(?:知识)?预防|防溺水|防触电|防诈骗|溺水(?:知识|宣传|教育)",
    r"(?:学|学习|培训|讲座|课程|知识|宣传|演练)(?:一下)?(?:急救|救护|心肺复苏|海姆立克)",
    r"气得[^,。!?;]{0,4}(?:说不出话|发抖|晕|不行)|(?:吵|烦|热|累|臭|冷|气|急|笑|忙|饿|困|痛|疼)得?(?:要|想)?死",
    r"电视剧|电影里|新闻(?:里|上)|小说|游戏里",
)

# Said just before a hit in the same clause: it is about prevention, a risk, or a what-if.
_HYPOTHETICAL = (
    r"(?:如果|万一|要是|假如|假设|一旦|以防|防止|预防|避免|谨防|防范|容易|可能会|会不会|怎么防|担心会|怕会)"
)
_WORRY = r"(?:怕|担心|害怕|就怕|生怕)"  # not for violence or self-harm: 怕着火 / 担心老人走丢 are requests
_NEGATION = r"(?:没|没有|不是|并没有|并没|并非|未|不会)$"
# It happened a while ago (前年脑溢血走了, 前几天有人被抢了包): not a danger now. Not for missing persons (still
# missing) or self-harm (still at risk).
_PAST = r"(?:前几天|几天前|上个月|个月前|上周|上星期|去年|前年|以前|之前|那年|年前|月前|昨天|前天|上次|小时候|那次)"

# Ordinary requests that use a weak danger word (火灾, 冒烟, 浓烟, 爆炸, 漏气, 车祸, 被人打了 ...).
_GUARD_SPECS: tuple[str, ...] = (
    r"费|缴|交钱|充值|开户|过户|报装|账单|价格|多少钱",
    r"灭火器|消防通道|消防栓|演练|演习|知识|培训|讲座|宣传|课程|科普|常识|学习|学一下|教一下",
    r"检查|安检|年检|维保|保养|过期|更换|换一个|安装|装一个|隐患|整改",
    r"烧烤|油烟|烧垃圾|焚烧|烧纸|烧香|抽烟|吸烟|烟囱|煤炉|熏|火锅|排烟|炒菜|做饭|工地|施工",
    r"轮胎|车胎|气球|篮球|足球|气门|自行车|打气|垃圾|下水道|化粪池|厕所|臭水沟|污水",
    r"停车|占道|堵了|堵住|进不来|通道",
    r"赔|医药费|律师|起诉|官司|理赔|保险|定损|责任|交警队|鉴定|仲裁|法院|追责",
    r"调解|协调|矛盾|不说话|派出所|报过警|报了警|立案|处理结果",
    r"电话是多少|号码是多少|怎么打|是多少|怎么办理|证明|发票|报销",
)


@dataclass(frozen=True)
class Hit:
    kind: str
    strong: bool
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Verdict:
    """What the net decided: the kind to answer with (one of KINDS, UNKNOWN or MULTIPLE), every kind seen,
    and the hits that decided it."""

    kind: str
    kinds: tuple[str, ...]
    hits: tuple[Hit, ...]

    @property
    def matched(self) -> list[str]:
        return [h.text for h in self.hits]


class EmergencyNet:
    """Compiled once; ``check(text)`` returns a Verdict or None."""

    def __init__(self) -> None:
        self.patterns: list[tuple[str, bool, Pattern[str]]] = [
            (kind, strong, re.compile(spec)) for kind, strong, spec in _PATTERN_SPECS
        ]
        self.masks: list[Pattern[str]] = [re.compile(m) for m in _MASK_SPECS if m.strip("|")]
        self.guards = re.compile("|".join(_GUARD_SPECS))
        self.hypothetical = re.compile(_HYPOTHETICAL)
        self.worry = re.compile(_WORRY)
        self.negation = re.compile(_NEGATION)
        self.past = re.compile(_PAST)

    def _masked(self, text: str) -> str:
        for mask in self.masks:
            text = mask.sub(lambda m: "□" * len(m.group(0)), text)
        return text

    def _clause_before(self, text: str, start: int, width: int = 10) -> str:
        before = text[max(0, start - width) : start]
        for i in range(len(before) - 1, -1, -1):
            if before[i] in _CLAUSE_END:
                return before[i + 1 :]
        return before

    def _dropped(self, kind: str, text: str, start: int) -> bool:
        clause = self._clause_before(text, start)
        if self.negation.search(clause) or self.hypothetical.search(clause):
            return True
        if kind in ("fire", "gas", "missing", "medical") and self.worry.search(clause):
            return True
        long_ago = self.past.search(self._clause_before(text, start, 16))
        return kind in ("fire", "gas", "medical", "violence") and long_ago is not None

    def hits(self, text: str) -> list[Hit]:
        """Every danger phrase in the (normalised, masked) text that is not hypothetical or negated."""
        masked = self._masked(normalize(text))
        found: list[Hit] = []
        for kind, strong, pattern in self.patterns:
            for m in pattern.finditer(masked):
                if m.group(0) and not self._dropped(kind, masked, m.start()):
                    found.append(Hit(kind, strong, m.start(), m.end(), m.group(0)))
        return found

    def check(self, text: str) -> Verdict | None:
        """A Verdict when the message describes a danger to life, else None."""
        found = self.hits(text)
        if not found:
            return None
        if not any(h.strong for h in found) and self.guards.search(normalize(text)):
            return None  # only weak words, in an ordinary request (灭火器过期了, 烧烤摊冒烟 ...)
        kinds = tuple(k for k in (*KINDS, UNKNOWN) if any(h.kind == k for h in found))
        return Verdict(self.primary(kinds), kinds, tuple(found))

    @staticmethod
    def primary(kinds: Sequence[str]) -> str:
        """The kind to answer with. A gas fire is a fire (leave, 119: do not open windows to it); poisoning
        oneself is self-harm (its answer says 120 too); kinds that need different numbers get them all."""
        specific = [k for k in kinds if k != UNKNOWN]
        if not specific:
            return UNKNOWN
        merged = set(specific)
        if {"fire", "gas"} <= merged:
            merged.discard("gas")
        if "self_harm" in merged:
            merged.discard("medical")
        if len(merged) == 1:
            return merged.pop()
        return MULTIPLE
