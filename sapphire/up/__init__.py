"""`sapphire up`: the whole platform on one machine from TradingAgent YAML.

:mod:`plan` reads the manifests (pure), :mod:`setup` makes the choices before anything starts,
:mod:`runner` runs the API, feed and agents, :mod:`summary` draws what they do.
"""
