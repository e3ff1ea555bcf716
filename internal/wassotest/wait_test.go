package wassotest

import (
	"fmt"
	"runtime"
	"testing"
	"time"

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
