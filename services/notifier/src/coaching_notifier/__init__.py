"""The notifier service: email, signed webhooks and an in-app inbox."""
