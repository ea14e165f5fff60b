"""Default plugins that reproduce arv-keepdocker 3.2.1: source choice, format check, links."""
