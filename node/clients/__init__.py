"""Reference clients of the node's services: ``pull`` (the nightly pull, verified end to end)."""
