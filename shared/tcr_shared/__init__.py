"""What the tcr services share, in four parts (docs/ARCHITECTURE.md):

- `language`: the published language: money, regions, identifiers, policy time, the vocabulary and the event
  schemas. Pure; partners install and import it on its own (`pip install ./shared`).
- `platform`: service plumbing: database and migrations, problems (RFC 9457), auth, observability.
- `feeds`: publishing and following feeds: the server router, the client, the follower and its SQL sink.
- `partners`: what partners see: the partner client, signed webhooks and the AsyncAPI document.
"""
