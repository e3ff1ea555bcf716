package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/spf13/cobra"

	"github.com/wasso/scheduler/attendance"
	"github.com/wasso/scheduler/migrations"
	wassoriver "github.com/wasso/scheduler/river"
)

type sweepEventJSON struct {
	EventID     int64     `json:"event_id"`
	Title       string    `json:"title,omitempty"`
	Deadline    time.Time `json:"deadline"`
	Resettle    bool      `json:"resettle"`
	UpdatedRows int       `json:"updated_rows"`
	CreatedRows int       `json:"created_rows"`
}

type sweepJSON struct {
	DryRun          bool             `json:"dry_run"`
	ProcessedEvents int              `json:"processed_events"`
	UpdatedRows     int              `json:"updated_rows"`
	CreatedRows     int              `json:"created_rows"`
	Events          []sweepEventJSON `json:"events"`
}

func (a *app) sweepCmd() *cobra.Command {
	var (
		dryRun  bool
		enqueue bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Settle due events now, in the foreground (or --enqueue a sweep job, or --dry-run)",
		Long: `sweep settles every due event now, in this process, each event in one
transaction, and prints the counts: events settled, rows turned ABSENT, ABSENT
rows created. Running it again changes nothing. It is safe while runners are
running: concurrent settlements of one event serialise in the database.

A backlog of more than one batch (100 events) is settled sweep.parallel
batches at a time, and its progress is shown: on a terminal, one line redrawn
in place (events settled out of those due, rows written, events per second,
time left); otherwise one log line per batch, at most every two seconds.

--dry-run computes the exact same settlement in a transaction that is rolled
back, prints what would change, and changes nothing.

--enqueue inserts an attendance.sweep job for the runners to work instead.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dryRun && enqueue {
				return usagef("--dry-run and --enqueue do not go together")
			}
			ctx := cmd.Context()
			// Room for sweep.parallel batches at once, and a connection
			// for the control client's inserts.
			pool, err := a.openPool(ctx, poolOptions{MaxConns: int32(max(4, a.cfg.Sweep.Parallel+2))})
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := migrations.CheckScheduler(ctx, pool, a.migrationOptions()); err != nil {
				return notReady(err)
			}
			if enqueue {
				var lookback time.Duration
				if cmd.Flags().Changed("lookback") {
					lookback = a.cfg.Sweep.Lookback
				}
				return a.enqueueSweep(ctx, pool, lookback, asJSON)
			}
			params := attendance.SettleParams{Lookback: a.cfg.Sweep.Lookback, Parallel: a.cfg.Sweep.Parallel}
			var out *sweepJSON
			if dryRun {
				out, err = a.sweepDryRun(ctx, pool, params)
			} else {
				out, err = a.sweepNow(ctx, pool, params)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, out)
			}
			return a.printSweep(out)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "print what would change and change nothing")
	f.BoolVar(&enqueue, "enqueue", false, "insert an attendance.sweep job instead of sweeping here")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.Duration("lookback", attendance.LookbackDefault, "settle deadlines up to this old, for a catch-up after a long outage (key sweep.lookback)")
	return cmd
}

func (a *app) sweepNow(ctx context.Context, pool *pgxpool.Pool, params attendance.SettleParams) (*sweepJSON, error) {
	// The same follow-ups as the sweep worker. Outside a job there is no
	// River client in the context, so the notices go through a control
	// client.
	rc := a.cfg.RiverConfig()
	rc.Logger = a.logger // for the warnings about unusual event data
	client, err := a.controlClient(pool)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	// A backlog of more than one batch reports its progress: counting
	// what is due first costs one query, which a single batch need not.
	due, err := attendance.DueEvents(ctx, pool, params)
	if err != nil {
		return nil, fmt.Errorf("sweep: count due events: %w", err)
	}
	var prog *progress
	if len(due) > cmp.Or(params.Limit, attendance.BatchSizeDefault) {
		prog = newProgress(a.stderr, a.logger, sweepProgress, "sweep progress", len(due))
		params.OnBatch = func(batch *attendance.SettleResult) {
			prog.add(batch.ProcessedEvents, batch.UpdatedRows+batch.CreatedRows)
		}
	}
	res, err := attendance.SettleDueFunc(ctx, pool, params, wassoriver.SettlementFollowUp(rc, client))
	if prog != nil {
		prog.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("sweep (%d events settled before the error): %w", res.ProcessedEvents, err)
	}
	a.logger.Info("attendance sweep", "processed_events", res.ProcessedEvents, "due_events", len(due), "updated_rows", res.UpdatedRows, "created_rows", res.CreatedRows, "parallel", cmp.Or(params.Parallel, attendance.ParallelDefault), "duration", time.Since(start))
	out := &sweepJSON{ProcessedEvents: res.ProcessedEvents, UpdatedRows: res.UpdatedRows, CreatedRows: res.CreatedRows, Events: []sweepEventJSON{}}
	for _, e := range res.Events {
		out.Events = append(out.Events, sweepEventJSON{EventID: e.EventID, Deadline: e.Deadline, UpdatedRows: e.UpdatedRows, CreatedRows: e.CreatedRows})
	}
	return out, nil
}

// sweepDryRun settles in a transaction it rolls back, so that the counts
// are exactly what a sweep would do now, not an estimate.
func (a *app) sweepDryRun(ctx context.Context, pool *pgxpool.Pool, params attendance.SettleParams) (*sweepJSON, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the point is to roll back
	// One instant for the listing and the settlement, so they agree.
	if err := tx.QueryRow(ctx, `SELECT statement_timestamp()`).Scan(&params.Now); err != nil {
		return nil, err
	}
	due, err := attendance.DueEvents(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	res, err := attendance.SettleDueTx(ctx, tx, params)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == pgerrcode.OutOfMemory { // "out of shared memory"
		// Each event claimed holds a lock until the rollback: a backlog of
		// several thousand events fills the lock table of one transaction.
		return nil, fmt.Errorf("dry run: %d due events are more than one transaction can lock (max_locks_per_transaction x max_connections): narrow it with --lookback: %w", len(due), err)
	}
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	settled := map[int64]attendance.SettledEvent{}
	for _, e := range res.Events {
		settled[e.EventID] = e
	}
	out := &sweepJSON{DryRun: true, ProcessedEvents: res.ProcessedEvents, UpdatedRows: res.UpdatedRows, CreatedRows: res.CreatedRows, Events: []sweepEventJSON{}}
	for _, d := range due {
		e := settled[d.EventID]
		out.Events = append(out.Events, sweepEventJSON{EventID: d.EventID, Title: d.Title, Deadline: d.Deadline, Resettle: d.Resettle, UpdatedRows: e.UpdatedRows, CreatedRows: e.CreatedRows})
	}
	return out, nil
}

func (a *app) printSweep(out *sweepJSON) error {
	if out.DryRun {
		fmt.Fprintf(a.stdout, "dry run: would settle %d events: %d rows to ABSENT, %d ABSENT rows created (nothing changed)\n",
			out.ProcessedEvents, out.UpdatedRows, out.CreatedRows)
	} else {
		fmt.Fprintf(a.stdout, "settled %d events: %d rows to ABSENT, %d ABSENT rows created\n",
			out.ProcessedEvents, out.UpdatedRows, out.CreatedRows)
	}
	if len(out.Events) == 0 {
		return nil
	}
	t := newTable(a.stdout, "EVENT", "TITLE", "DEADLINE", "RESETTLE", "UPDATED", "CREATED")
	for _, e := range out.Events {
		title := e.Title
		if !out.DryRun {
			title = "-"
		}
		t.row(e.EventID, title, a.fmtTimeV(e.Deadline), yesNo(e.Resettle), e.UpdatedRows, e.CreatedRows)
	}
	return t.flush()
}

func (a *app) enqueueSweep(ctx context.Context, pool *pgxpool.Pool, lookback time.Duration, asJSON bool) error {
	client, err := a.controlClient(pool)
	if err != nil {
		return err
	}
	res, err := client.Insert(ctx, attendance.SweepArgs{Lookback: lookback}, nil)
	if err != nil {
		return fmt.Errorf("enqueue sweep: %w", err)
	}
	if asJSON {
		return printJSON(a.stdout, jobJSONOf(res.Job))
	}
	fmt.Fprintf(a.stdout, "enqueued %s job %d on queue %s\n", res.Job.Kind, res.Job.ID, res.Job.Queue)
	return nil
}

// controlClient is a River client that works nothing and is never
// started: it inserts, lists, cancels, retries and deletes jobs for the
// CLI commands. Cancelling a running job notifies the runner working it
// through Postgres.
func (a *app) controlClient(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: a.logger,
		Schema: a.cfg.Schema,
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}
