"""The welcome saga's Lambda code: contracts, the quota store, the simulated email
provider, and the entry points (`welcome.handler`, `steps.*`)."""
