"""Learning to rank: LETOR files, ranking metrics, click debiasing, the ranking training step."""
