"""Built-in market feeds: pure tick generators (simulated, CSV replay) and a thin publisher."""
