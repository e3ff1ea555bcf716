package wassotest

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// fatalTB records a Fatalf and stops the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	t.Parallel()

	t.Run("ReturnsOnceTheConditionHolds", func(t *testing.T) {
		t.Parallel()

		calls := 0
		WaitFor(t, time.Minute, "three calls", func() bool { calls++; return calls == 3 })
		require.Equal(t, 3, calls)
	})

	t.Run("FailsNamingWhatItWaitedFor", func(t *testing.T) {
		t.Parallel()

		tb := &fatalTB{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			WaitFor(tb, 30*time.Millisecond, "nothing", func() bool { return false })
		}()
		<-done
		require.Equal(t, "gave up after 30ms waiting for nothing", tb.msg)
	})
}

func TestSyncBuffer(t *testing.T) {
	t.Parallel()

	var b SyncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, _ = b.Write([]byte("x"))
		}
	}()
	_ = b.String() // read while written: the race detector checks the lock
	<-done
	require.Len(t, b.String(), 100)
}

func TestRetryTooManyClients(t *testing.T) {
	t.Parallel()

	refused := fmt.Errorf("failed to connect: %w", &pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"})
	require.True(t, TooManyClients(refused))
	require.True(t, TooManyClients(errors.New("migrate: server error: FATAL: sorry, too many clients already (SQLSTATE 53300)")), "flattened into a message")
	require.False(t, TooManyClients(nil))
	require.False(t, TooManyClients(&pgconn.PgError{Code: "42P01"}))

	calls := 0
	require.NoError(t, RetryTooManyClients(func() error {
		calls++
		if calls < 3 {
			return refused
		}
		return nil
	}))
	require.Equal(t, 3, calls, "asked again until the server had room")

	calls = 0
	other := errors.New("relation does not exist")
	require.Equal(t, other, RetryTooManyClients(func() error { calls++; return other }))
	require.Equal(t, 1, calls, "other errors are returned at once")
}
