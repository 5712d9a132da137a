"""What partners use and see: the partner client, signed webhooks and the AsyncAPI document."""
