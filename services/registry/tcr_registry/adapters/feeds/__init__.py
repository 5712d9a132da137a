"""The registry's feeds: its event log read as the public feed (CloudEvents), and the contract index that follows it."""
