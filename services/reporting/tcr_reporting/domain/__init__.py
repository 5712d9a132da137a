"""Pure metrics rules: how an event changes county figures, roll-ups, ranking. No I/O."""
