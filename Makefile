.PHONY: demo test vet bench bench-sweep bench-idle bench-schedules build

# The README's quick start.
demo:
	go run ./runner/cmd/wasso-runner demo

test:
	go test -count=1 -timeout 20m ./...

vet:
	gofmt -l . | (! grep .)
	go vet ./...

build:
	go build -o bin/wasso-runner ./runner/cmd/wasso-runner

bench: bench-sweep bench-idle

bench-sweep:
	go test ./attendance -run '^$$' -bench BenchmarkSweep -benchtime 3x -timeout 60m

bench-idle:
	go test ./attendance -run '^$$' -bench BenchmarkIdleSweep -benchtime 200x -timeout 30m

bench-schedules:
	go test ./river/schedule -run '^$$' -bench BenchmarkPass -benchtime 5x
	go test ./river/schedule -run '^$$' -bench BenchmarkIdlePass -benchtime 2000x
	go test ./river/schedule -run '^$$' -bench BenchmarkLogOutcome
