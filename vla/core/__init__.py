"""The contracts every package shares: observation, action, policy, statistics, episode schema."""
