"""Reference clients of the node's services: ``pull`` (the nightly pull, verified end to end) and
``pull_evidence`` (a published pull's files and their offline check, ``exnode pull verify``)."""
