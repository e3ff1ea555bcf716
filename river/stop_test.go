package wassoriver_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/wasso/scheduler/internal/wassotest"
	wassoriver "github.com/wasso/scheduler/river"
)

// lockedBuffer is a log sink safe for the client's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestClientStopWaitsForLeaderLoops starts a client, waits until it leads
// and runs its deadline discovery, and stops it: when Stop returns, the
// discovery loop has already returned (its last log line is written), and
// once the pool is closed no goroutine of the client is left. It does not
// run in parallel, so that goleak sees only this test's goroutines.
func TestClientStopWaitsForLeaderLoops(t *testing.T) {
	db := wassotest.NewDB(t, wassotest.Options{})
	ignore := goleak.IgnoreCurrent()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db.URL)
	require.NoError(t, err)
	logs := &lockedBuffer{}
	client, err := wassoriver.NewClient(pool, wassoriver.Config{
		Schema: db.Schema,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "deadline discovery started") {
		require.True(t, time.Now().Before(deadline), "the client never led:\n%s", logs.String())
		time.Sleep(20 * time.Millisecond)
	}

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, client.Stop(stopCtx))
	require.Contains(t, logs.String(), "deadline discovery stopped", "Stop returned before the discovery loop did")
	pool.Close()
	goleak.VerifyNone(t, ignore)
}
