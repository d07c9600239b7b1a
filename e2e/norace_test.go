//go:build !race

package e2e

// raceEnabled reports that the tests run with -race; the broker is then built with it too.
const raceEnabled = false
