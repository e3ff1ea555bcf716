// Package runner is the wasso-runner binary: its commands, configuration,
// HTTP server (River UI, health checks, Prometheus metrics) and signal
// handling. It holds no business rules; those live in package attendance,
// and the River wiring in package wassoriver. It is the only package that
// imports viper and cobra.
//
// Main runs one invocation and returns its exit code, so that end-to-end
// tests and the demo run exactly what the binary runs. The commands:
//
//	run        work jobs; the elected leader runs the stored schedules
//	           (the sweep among them); serve /riverui/, /healthz,
//	           /readyz, /metrics
//	migrate    up | down | status
//	setup      check the database, seed the default schedules once, print
//	           the stored schedules
//	schedule   list | add | update | enable | disable | remove | run-now |
//	           backfill
//	sweep      settle due events now (--dry-run, --enqueue)
//	inspect    active | registered | scheduled | queues | stats
//	jobs       list | cancel | retry | delete | purge
//	config     print the resolved configuration and its sources
//	demo       a zero-configuration tour on a throwaway Postgres
//	version
//
// Configuration is resolved by viper with the precedence flags >
// environment (WASSO_*) > config file > defaults; wasso-runner.example.yaml
// documents every key.
package runner
