"""The published language of tcr: the words, codes, amounts and event schemas every service and partner shares.
Pure Python (pydantic for the event schemas); nothing here does I/O."""
