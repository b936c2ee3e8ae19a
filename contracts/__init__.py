"""The domain's models: parties, works, splits, consent, licences, policy."""
