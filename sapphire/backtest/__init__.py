"""``sapphire backtest``: the agents, executor and order engine over history, on a simulated clock."""
