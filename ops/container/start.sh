#!/bin/sh
# The container's command: take the config files mounted at /etc/exnode (ops/compose.yaml) into the data
# directory, create what is missing (keys, database schema) and serve. `exnode init` is idempotent.
# Other commands (`docker compose run --rm NODE exnode restore …`) replace this script, so a restore
# works on the data volume alone.
set -eu
if [ -d /etc/exnode ]; then
    for file in /etc/exnode/*.toml; do
        [ -e "$file" ] && cp "$file" "$EXNODE_DATA/"
    done
fi
exnode init --data "$EXNODE_DATA" --node-id "${EXNODE_NODE_ID:-node}"
exec exnode serve --data "$EXNODE_DATA"
