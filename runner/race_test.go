package runner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// What the backend does to one member of an event around its deadline, in
// TestCheckInRace.
type backendWrite int

const (
	// A check-in (a new LATE row timestamped before the deadline) in a
	// transaction that commits 0.3 to 1.5 s after the deadline.
	heldCheckIn backendWrite = iota
	// An organiser's edit of an UNCHECKED row to PRESENT, in place, in a
	// transaction that commits 0.3 to 1.5 s after the deadline.
	heldEdit
	// A check-in committed 0 to 50 ms after the deadline.
	quickCheckIn
	// A check-in whose transaction stays open 4 s past the deadline,
	// longer than the settlement waits.
	longCheckIn
	// A check-in timestamped before the deadline but inserted 1.5 s after
	// it, in autocommit: nothing is in flight when the settlement looks.
	staleCheckIn
	// An UNCHECKED row nobody touches: the member ends ABSENT.
	untouched
	// No row at all: the member gets one ABSENT row.
	noRow
)

// raceMix is how many members of each event get each write: 30 members.
var raceMix = []struct {
	write backendWrite
	n     int
}{
	{heldCheckIn, 6}, {heldEdit, 6}, {quickCheckIn, 3}, {longCheckIn, 2}, {staleCheckIn, 1}, {untouched, 6}, {noRow, 6},
}

// TestCheckInRace runs the runner as a process of its own, with default
// settings and a sweep every 2 s, while the backend writes around ten
// deadlines as Django does: check-ins inserted with a created_at before the
// deadline and committed after it, organisers' in-place edits committed
// after it, quick autocommit check-ins, a check-in held open past the
// settlement's wait and one inserted late with an early timestamp. Every
// member ends with the status the backend gave them (their own row the
// only one), and every member the backend left alone ends ABSENT exactly
// once.
func TestCheckInRace(t *testing.T) {
	t.Parallel()
	reserveConns(t, 28) // a runner, and the backend's pool of 20
	ctx := context.Background()
	db := newDB(t, wassotest.Options{})
	seedValue := time.Now().UnixNano()
	t.Logf("seed %d", seedValue)
	rng := rand.New(rand.NewPCG(uint64(seedValue), 0))

	const events = 10
	members := 0
	for _, m := range raceMix {
		members += m.n
	}
	var now time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT now()`).Scan(&now))
	club, err := seed.CreateClub(ctx, db.Pool, "Race club", members, now.Add(-48*time.Hour))
	require.NoError(t, err)

	type member struct {
		event, mapping int64
		write          backendWrite
		row            int64 // the UNCHECKED row, for heldEdit and untouched
	}
	var all []member
	deadlines := make([]time.Time, events)
	eventIDs := make([]int64, events)
	first := now.Add(6 * time.Second).Truncate(time.Millisecond)
	for i := range events {
		deadlines[i] = first.Add(time.Duration(i) * 2500 * time.Millisecond)
		eventIDs[i], err = seed.CreateEvent(ctx, db.Pool, seed.Event{
			GenerationID: club.GenerationID,
			Title:        fmt.Sprintf("Practice %d", i+1),
			Start:        deadlines[i].Add(-30 * time.Minute),
			StartMinutes: -10,
			LateMinutes:  10,
			FailMinutes:  30,
		}, now.Add(-time.Hour))
		require.NoError(t, err)
		k := 0
		for _, mix := range raceMix {
			for range mix.n {
				m := member{event: eventIDs[i], mapping: club.MappingIDs[k], write: mix.write}
				if mix.write == heldEdit || mix.write == untouched {
					m.row, err = seed.AddAttendance(ctx, db.Pool, m.event, m.mapping, 0, deadlines[i].Add(-40*time.Minute))
					require.NoError(t, err)
				}
				all = append(all, m)
				k++
			}
		}
	}

	runner := startRunner(t, db, cliOpts{}, "--sweep-interval", "2s")

	// The backend: one pool of its own, as Django's connections are. The
	// deadlines are 2.5 s apart so that the writers of about one event are
	// in flight at a time and 20 connections serve them all; a writer that
	// has to wait for a connection only writes later, which the outcome
	// below does not depend on.
	backendCfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	backendCfg.MaxConns = 20
	backend, err := pgxpool.NewWithConfig(ctx, backendCfg)
	require.NoError(t, err)
	t.Cleanup(backend.Close)
	// Its connections are opened now, not by the writers around the
	// deadlines, when the server may have none left for a moment (the
	// tests of every package running at once); they stay open, idle,
	// until then.
	conns := make([]*pgxpool.Conn, backendCfg.MaxConns)
	for i := range conns {
		require.NoError(t, wassotest.RetryTooManyClients(func() error {
			var err error
			conns[i], err = backend.Acquire(ctx)
			return err
		}))
	}
	for _, c := range conns {
		c.Release()
	}

	sleepUntil := func(at time.Time) { time.Sleep(time.Until(at)) }
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		lastDone time.Time
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	checkIn := func(tx pgx.Tx, m member, createdAt time.Time) error {
		_, err := tx.Exec(ctx, `
INSERT INTO attendances (status, "timestamp", created_at, modified_at, is_modified, event_id, generation_mapping_id)
VALUES (2, $1, $1, $1, false, $2, $3)`, createdAt, m.event, m.mapping)
		return err
	}
	for i, m := range all {
		deadline := deadlines[(i/members)%events]
		jitter := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
		var begin, commit time.Time
		createdAt := deadline.Add(-jitter(time.Millisecond, 200*time.Millisecond))
		switch m.write {
		case heldCheckIn, heldEdit:
			begin, commit = deadline.Add(-300*time.Millisecond), deadline.Add(jitter(300*time.Millisecond, 1500*time.Millisecond))
		case quickCheckIn:
			begin, commit = deadline.Add(-20*time.Millisecond), deadline.Add(jitter(0, 50*time.Millisecond))
		case longCheckIn:
			begin, commit = deadline.Add(-300*time.Millisecond), deadline.Add(4*time.Second)
		case staleCheckIn:
			begin, commit = deadline.Add(1500*time.Millisecond), deadline.Add(1500*time.Millisecond)
		default:
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sleepUntil(begin)
			err := pgx.BeginFunc(ctx, backend, func(tx pgx.Tx) error {
				var err error
				if m.write == heldEdit {
					_, err = tx.Exec(ctx, `UPDATE attendances SET status = 1, is_modified = true, modified_at = $2 WHERE id = $1`, m.row, createdAt)
				} else {
					err = checkIn(tx, m, createdAt)
				}
				if err != nil {
					return err
				}
				sleepUntil(commit)
				return nil
			})
			if err != nil {
				fail(fmt.Errorf("backend write for event %d, mapping %d: %w", m.event, m.mapping, err))
			}
			mu.Lock()
			if now := time.Now(); now.After(lastDone) {
				lastDone = now
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Empty(t, errs)

	// The state the backend's writes call for.
	want := func(m member) int {
		switch m.write {
		case heldEdit:
			return 1
		case untouched, noRow:
			return 3
		}
		return 2
	}
	type final struct {
		rows, latest int
	}
	state := func() (map[[2]int64]final, error) {
		rows, err := db.Pool.Query(ctx, `
SELECT event_id, generation_mapping_id, count(*),
       (array_agg(status ORDER BY created_at DESC, id DESC))[1]
FROM attendances GROUP BY 1, 2`)
		if err != nil {
			return nil, err
		}
		out := map[[2]int64]final{}
		var key [2]int64
		var f final
		_, err = pgx.ForEachRow(rows, []any{&key[0], &key[1], &f.rows, &f.latest}, func() error {
			out[key] = f
			return nil
		})
		return out, err
	}
	// Wait for a sweep that started after the last write to complete: its
	// Reconcile has then seen every write.
	sweptAfter := func() bool {
		var n int
		err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND state = 'completed' AND attempted_at > $1`, lastDone).Scan(&n)
		return err == nil && n > 0
	}
	wassotest.WaitFor(t, 90*time.Second, "a sweep completed after the backend's last write", sweptAfter)

	got, err := state()
	require.NoError(t, err)
	wrong := 0
	for _, m := range all {
		f := got[[2]int64{m.event, m.mapping}]
		if f.rows != 1 || f.latest != want(m) {
			wrong++
			t.Errorf("event %d mapping %d (write %d): %d rows, latest status %d; want 1 row, status %d", m.event, m.mapping, m.write, f.rows, f.latest, want(m))
		}
	}
	require.Zero(t, wrong)
	require.Equal(t, events, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement WHERE settle_count = 1`))

	// How the runner got there: writers waited for by the settlements,
	// and rows repaired by the sweeps.
	waited, repaired := 0, 0
	for _, line := range runner.logLines() {
		switch line["msg"] {
		case "attendance event settled":
			if n, ok := line["waited_writers"].(float64); ok {
				waited += int(n)
			}
		case "check-in restored above a settlement row":
			repaired++
		}
	}
	t.Logf("settlements waited for %d writers in flight; sweeps repaired %d rows", waited, repaired)
	require.Positive(t, waited, "the settlements waited for no writer in flight")
}
