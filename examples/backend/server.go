package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasso/scheduler/attendance"
)

// server is the backend: it writes events and, in the same transaction,
// schedules their settlement. It never works a job; the runners do.
type server struct {
	pool     *pgxpool.Pool
	inserter attendance.Inserter
	logger   *slog.Logger
}

// eventRequest is the body of POST /events and PATCH /events/{id}.
type eventRequest struct {
	GenerationID int64     `json:"generation_id"`
	Title        string    `json:"title"`
	Start        time.Time `json:"start"`
	StartMinutes int       `json:"start_minutes"`
	LateMinutes  int       `json:"late_minutes"`
	FailMinutes  int       `json:"fail_minutes"`
	Location     string    `json:"location"`
}

// eventResponse says what was written and scheduled.
type eventResponse struct {
	ID       int64     `json:"id"`
	Deadline time.Time `json:"deadline"`
	// JobID is the settle_event job's id (0 when the event was already
	// settled for this deadline).
	JobID int64 `json:"job_id,omitempty"`
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", s.createEvent)
	mux.HandleFunc("PATCH /events/{id}", s.moveEvent)
	mux.HandleFunc("GET /events/{id}/settlement", s.settlement)
	return mux
}

// createEvent inserts the event as the Django backend would (every NOT
// NULL column given) and schedules its settlement in one transaction:
// both commit or neither does.
func (s *server) createEvent(w http.ResponseWriter, r *http.Request) {
	var req eventRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	if req.Title == "" || req.Start.IsZero() || req.GenerationID == 0 {
		httpError(w, http.StatusBadRequest, "generation_id, title and start are required")
		return
	}
	var res eventResponse
	err := pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(r.Context(), `
			INSERT INTO events (title, date, start_datetime, end_datetime, start_minutes, late_minutes, fail_minutes,
			                    location, attendance_type, created_at, updated_at, generation_id)
			VALUES ($1, ($2::timestamptz AT TIME ZONE 'Asia/Seoul')::date, $2, $2 + interval '2 hours', $3, $4, $5,
			        $6, 'QR', now(), now(), $7)
			RETURNING id`,
			req.Title, req.Start, req.StartMinutes, req.LateMinutes, req.FailMinutes, req.Location, req.GenerationID).Scan(&res.ID)
		if err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		return s.schedule(r.Context(), tx, &res)
	})
	s.answer(w, r, "create event", http.StatusCreated, &res, err)
}

// moveEvent changes an event's start or check-in window and schedules the
// settlement for the new deadline in the same transaction. The job for the
// old deadline stays; it finds nothing due.
func (s *server) moveEvent(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "bad event id")
		return
	}
	var req eventRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "decode body: "+err.Error())
		return
	}
	res := eventResponse{ID: id}
	err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(r.Context(), `
			UPDATE events SET start_datetime = coalesce($2, start_datetime),
			                  date = (coalesce($2, start_datetime) AT TIME ZONE 'Asia/Seoul')::date,
			                  fail_minutes = coalesce($3, fail_minutes), updated_at = now()
			WHERE id = $1`, id, nullTime(req.Start), nullInt(req.FailMinutes))
		if err != nil {
			return fmt.Errorf("update event: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("event %d: %w", id, attendance.ErrEventNotFound)
		}
		return s.schedule(r.Context(), tx, &res)
	})
	s.answer(w, r, "move event", http.StatusOK, &res, err)
}

func (s *server) schedule(ctx context.Context, tx pgx.Tx, res *eventResponse) error {
	scheduled, err := attendance.ScheduleEventTx(ctx, tx, s.inserter, res.ID)
	if err != nil {
		return err
	}
	res.Deadline = scheduled.Deadline
	if scheduled.Job != nil {
		res.JobID = scheduled.Job.Job.ID
	}
	return nil
}

// settlement reports whether and when the event was settled.
func (s *server) settlement(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "bad event id")
		return
	}
	var out struct {
		Deadline    time.Time `json:"deadline"`
		SettledAt   time.Time `json:"settled_at"`
		UpdatedRows int       `json:"updated_rows"`
		CreatedRows int       `json:"created_rows"`
	}
	err = s.pool.QueryRow(r.Context(), `SELECT deadline, settled_at, updated_rows, created_rows FROM wasso_settlement WHERE event_id = $1`, id).
		Scan(&out.Deadline, &out.SettledAt, &out.UpdatedRows, &out.CreatedRows)
	if errors.Is(err, pgx.ErrNoRows) {
		httpError(w, http.StatusNotFound, "not settled")
		return
	}
	if err != nil {
		s.logger.ErrorContext(r.Context(), "read settlement", slog.Int64("event_id", id), slog.String("error", err.Error()))
		httpError(w, http.StatusInternalServerError, "read settlement")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// answer maps the transaction's outcome to a response. A generation that
// does not exist surfaces at commit (Django's foreign keys are DEFERRABLE
// INITIALLY DEFERRED), and rolls the settle job back with the event.
func (s *server) answer(w http.ResponseWriter, r *http.Request, doing string, status int, res *eventResponse, err error) {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		s.logger.InfoContext(r.Context(), doing, slog.Int64("event_id", res.ID), slog.Time("deadline", res.Deadline), slog.Int64("job_id", res.JobID))
		writeJSON(w, status, res)
	case errors.Is(err, attendance.ErrEventNotFound):
		httpError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation:
		httpError(w, http.StatusUnprocessableEntity, "no such generation")
	default:
		s.logger.ErrorContext(r.Context(), doing+" failed", slog.String("error", err.Error()))
		httpError(w, http.StatusInternalServerError, doing+" failed")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nullInt(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}
