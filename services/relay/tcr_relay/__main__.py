"""`python -m tcr_relay`: the same as `tcr-relay serve`."""

from tcr_relay.bootstrap import serve

if __name__ == "__main__":
    serve()
