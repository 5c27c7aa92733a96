"""Order books rebuilt from stored events, and replays of those events for backtests."""
