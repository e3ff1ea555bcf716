package attendance_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/internal/seed"
	"github.com/wasso/scheduler/internal/wassotest"
)

// recordingNotifier records the notices it is given and fails while err
// is set.
type recordingNotifier struct {
	mu      sync.Mutex
	err     error
	notices []attendance.AbsentNotice
}

func (n *recordingNotifier) Notify(_ context.Context, notice attendance.AbsentNotice) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return n.err
	}
	n.notices = append(n.notices, notice)
	return nil
}

func TestNotifyFollowUp(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	t.Run("EnqueuedWithTheSettlement", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		client := insertOnlyClient(t, db)
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 3, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		event := dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		// Everyone checked in to this one: no notice.
		allPresent := dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		for _, m := range club.MappingIDs {
			_, err := seed.AddAttendance(ctx, db.Pool, allPresent, m, present, testNow.Add(-40*time.Minute))
			require.NoError(t, err)
		}
		_, err = seed.AddAttendance(ctx, db.Pool, event, club.MappingIDs[1], present, testNow.Add(-40*time.Minute))
		require.NoError(t, err)

		// A settlement whose transaction fails after the follow-up leaves
		// no notice behind.
		boom := errors.New("boom")
		_, err = attendance.SettleDueFunc(ctx, db.Pool, attendance.SettleParams{Now: testNow},
			attendance.ChainFollowUps(attendance.NotifyFollowUp(client), func(context.Context, pgx.Tx, *attendance.SettleResult) error { return boom }))
		require.ErrorIs(t, err, boom)
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM river_job`))
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement`))

		res, err := attendance.SettleDueFunc(ctx, db.Pool, attendance.SettleParams{Now: testNow}, attendance.NotifyFollowUp(client))
		require.NoError(t, err)
		require.Equal(t, 2, res.ProcessedEvents)

		deadline := testNow.Add(-time.Minute)
		job := rivertest.RequireInserted[*riverpgxv5.Driver](ctx, t, riverpgxv5.New(db.Pool), attendance.NotifyAbsentArgs{
			EventID:        event,
			Deadline:       deadline.UTC(),
			SettledAt:      testNow.UTC(),
			MappingIDs:     []int64{club.MappingIDs[0], club.MappingIDs[2]},
			IdempotencyKey: attendance.AbsentIdempotencyKey(event, deadline, testNow),
		}, &rivertest.RequireInsertedOpts{Schema: db.Schema, MaxAttempts: attendance.NotifyMaxAttemptsDefault})
		require.Equal(t, []int64{club.MappingIDs[0], club.MappingIDs[2]}, job.Args.MappingIDs)
		require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM river_job WHERE kind = 'attendance.notify_absent'`))
	})

	t.Run("OutsideAJobWithoutInserter", func(t *testing.T) {
		t.Parallel()

		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Go", 1, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		_, err = attendance.SettleDueFunc(ctx, db.Pool, attendance.SettleParams{Now: testNow}, attendance.NotifyFollowUp(nil))
		require.ErrorContains(t, err, "no River client in context")
		require.Zero(t, count(t, db.Pool, `SELECT count(*) FROM wasso_settlement`), "rolled back rather than settled without notices")
	})

	t.Run("IdempotencyKeyPerSettlement", func(t *testing.T) {
		t.Parallel()

		deadline := testNow.Add(-time.Minute)
		a := attendance.AbsentIdempotencyKey(1, deadline, testNow)
		require.Equal(t, a, attendance.AbsentIdempotencyKey(1, deadline.UTC(), testNow.UTC()), "the same instants give the same key in any zone")
		require.NotEqual(t, a, attendance.AbsentIdempotencyKey(2, deadline, testNow))
		require.NotEqual(t, a, attendance.AbsentIdempotencyKey(1, deadline.Add(time.Hour), testNow))
		require.NotEqual(t, a, attendance.AbsentIdempotencyKey(1, deadline, testNow.Add(time.Second)))
	})
}

func TestNotifyAbsentWorker(t *testing.T) {
	t.Parallel()

	ctx := context.Background()

	setup := func(t *testing.T) (*wassotest.DB, *seed.Club, int64, attendance.NotifyAbsentArgs) {
		db := wassotest.NewDB(t, wassotest.Options{})
		club, err := seed.CreateClub(ctx, db.Pool, "Chess club", 3, testNow.Add(-48*time.Hour))
		require.NoError(t, err)
		event := dueEvent(t, db.Pool, club.GenerationID, time.Minute)
		deadline := testNow.Add(-time.Minute)
		// The notice is sent to members still absent when it goes out, so
		// settle the event first: every member is then ABSENT.
		settled, err := attendance.SettleDue(ctx, db.Pool, attendance.SettleParams{Now: testNow})
		require.NoError(t, err)
		require.Equal(t, 3, settled.CreatedRows)
		args := attendance.NotifyAbsentArgs{
			EventID:        event,
			Deadline:       deadline,
			SettledAt:      testNow,
			MappingIDs:     []int64{club.MappingIDs[0], club.MappingIDs[2]},
			IdempotencyKey: attendance.AbsentIdempotencyKey(event, deadline, testNow),
		}
		return db, club, event, args
	}
	work := func(t *testing.T, db *wassotest.DB, notifier attendance.Notifier, args attendance.NotifyAbsentArgs) (*rivertest.WorkResult, error) {
		worker, err := attendance.NewNotifyAbsentWorker(db.Pool, attendance.NotifyAbsentConfig{Notifier: notifier, Logger: testLogger(t)})
		require.NoError(t, err)
		return workJob(t, db, worker, args, nil)
	}

	t.Run("ResolvesNames", func(t *testing.T) {
		t.Parallel()

		db, club, event, args := setup(t)
		notifier := &recordingNotifier{}
		res, err := work(t, db, notifier, args)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Len(t, notifier.notices, 1)
		n := notifier.notices[0]
		require.Equal(t, "Chess club", n.ClubName)
		require.Equal(t, club.ID, n.ClubID)
		require.Equal(t, "Weekly meeting", n.EventTitle)
		require.Equal(t, event, n.EventID)
		require.Equal(t, args.IdempotencyKey, n.IdempotencyKey)
		require.Equal(t, 1, n.Attempt)
		require.Equal(t, []attendance.AbsentMember{
			{MappingID: club.MappingIDs[0], MemberID: club.MemberIDs[0], UserID: 1000001},
			{MappingID: club.MappingIDs[2], MemberID: club.MemberIDs[2], UserID: 1000003},
		}, n.Members)
	})

	t.Run("MembersNoLongerAbsentAreLeftOut", func(t *testing.T) {
		t.Parallel()

		db, club, event, args := setup(t)
		// An organiser marks the first member present after the
		// settlement, by appending a row as the backend does.
		_, err := db.Pool.Exec(ctx, `
INSERT INTO attendances (status, "timestamp", created_at, modified_at, is_modified, event_id, generation_mapping_id)
VALUES (1, $1, $1, $1, true, $2, $3)`, testNow.Add(time.Second), event, club.MappingIDs[0])
		require.NoError(t, err)
		notifier := &recordingNotifier{}
		_, err = work(t, db, notifier, args)
		require.NoError(t, err)
		require.Len(t, notifier.notices, 1)
		require.Equal(t, []attendance.AbsentMember{
			{MappingID: club.MappingIDs[2], MemberID: club.MemberIDs[2], UserID: 1000003},
		}, notifier.notices[0].Members)

		// Once nobody of the notice is absent any more, nothing is sent.
		_, err = db.Pool.Exec(ctx, `UPDATE attendances SET status = 2 WHERE event_id = $1 AND generation_mapping_id = $2`, event, club.MappingIDs[2])
		require.NoError(t, err)
		notifier = &recordingNotifier{}
		res, err := work(t, db, notifier, args)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Empty(t, notifier.notices)
	})

	t.Run("NotifierErrorFailsTheAttempt", func(t *testing.T) {
		t.Parallel()

		db, _, _, args := setup(t)
		down := errors.New("push provider down")
		res, err := work(t, db, &recordingNotifier{err: down}, args)
		require.ErrorIs(t, err, down)
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
	})

	t.Run("DeletedEventIsCancelled", func(t *testing.T) {
		t.Parallel()

		db, _, event, args := setup(t)
		_, err := db.Pool.Exec(ctx, `DELETE FROM attendances WHERE event_id = $1`, event)
		require.NoError(t, err)
		_, err = db.Pool.Exec(ctx, `DELETE FROM events WHERE id = $1`, event)
		require.NoError(t, err)
		notifier := &recordingNotifier{}
		res, err := work(t, db, notifier, args)
		require.NoError(t, err, "a cancellation is not an error to retry")
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, attendance.ErrEventNotFound.Error())
		require.Empty(t, notifier.notices)
	})
}
