"""Loss integrity (issue 7): metric contracts, frozen validation sets, trivial baselines, reliance
probes and exploit alarms. The training loop calls into it; families declare what it checks."""
