package migrations

// Exported for the tests in package migrations_test, which use
// internal/wassotest (itself importing this package).
var (
	ApplyOne = applyOne
	Load     = load
)
