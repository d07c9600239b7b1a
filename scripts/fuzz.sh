#!/bin/sh
# Runs every fuzz target of the module for $FUZZTIME each (a duration such as 3s, or a count
# of inputs such as 5000x; default 3s), one at a time.
set -eu
fuzztime=${FUZZTIME:-3s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $target ($fuzztime)"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -parallel=2 "$pkg"
	done
done
