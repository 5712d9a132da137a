"""Service plumbing every tcr service uses: database and migrations, problems, auth, observability."""
