// live updates: filled in with /live
