// Package seed writes Wasso rows the way the Django backend does (every
// NOT NULL column given, since Django set no defaults), for tests, the demo
// and benchmarks.
package seed

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Club is a club with one generation and its members.
type Club struct {
	ID           int64
	GenerationID int64
	// MemberIDs are club_member ids, in creation order.
	MemberIDs []int64
	// MappingIDs are the current generation_mapping ids of MemberIDs, in
	// the same order.
	MappingIDs []int64
}

// CreateClub creates a club, one current generation and members current
// members of it, at instant now.
func CreateClub(ctx context.Context, db DB, name string, members int, now time.Time) (*Club, error) {
	c := &Club{}
	err := db.QueryRow(ctx, `INSERT INTO club_club (name, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id`, name, now).Scan(&c.ID)
	if err != nil {
		return nil, fmt.Errorf("create club %q: %w", name, err)
	}
	c.GenerationID, err = CreateGeneration(ctx, db, c.ID, name+" gen 1", now)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(ctx, `UPDATE club_club SET current_generation_id = $1 WHERE id = $2`, c.GenerationID, c.ID); err != nil {
		return nil, fmt.Errorf("set current generation: %w", err)
	}
	rows, err := db.Query(ctx, `
		WITH m AS (
			INSERT INTO club_member (is_deleted, created_at, updated_at, club_id, user_id)
			SELECT false, $2, $2, $1, 1000000 + g FROM generate_series(1, $3) g
			RETURNING id
		)
		INSERT INTO generation_mapping (created_at, updated_at, is_current, generation_id, member_id)
		SELECT $2, $2, true, $4, id FROM m ORDER BY id
		RETURNING member_id, id`, c.ID, now, members, c.GenerationID)
	if err != nil {
		return nil, fmt.Errorf("create members: %w", err)
	}
	var memberID, mappingID int64
	_, err = pgx.ForEachRow(rows, []any{&memberID, &mappingID}, func() error {
		c.MemberIDs = append(c.MemberIDs, memberID)
		c.MappingIDs = append(c.MappingIDs, mappingID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create members: %w", err)
	}
	return c, nil
}

// CreateGeneration creates a (not deleted) generation of a club.
func CreateGeneration(ctx context.Context, db DB, clubID int64, name string, now time.Time) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `
		INSERT INTO club_generation (is_deleted, name, activated, start_date, created_at, updated_at, auto_approve, club_id)
		VALUES (false, $1, true, $2::timestamptz::date, $2, $2, false, $3) RETURNING id`, name, now, clubID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("create generation %q: %w", name, err)
	}
	return id, nil
}

// AddMapping maps a member to a generation.
func AddMapping(ctx context.Context, db DB, generationID, memberID int64, current bool, now time.Time) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `
		INSERT INTO generation_mapping (created_at, updated_at, is_current, generation_id, member_id)
		VALUES ($1, $1, $2, $3, $4) RETURNING id`, now, current, generationID, memberID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("map member %d to generation %d: %w", memberID, generationID, err)
	}
	return id, nil
}

// Event describes an event to create.
type Event struct {
	GenerationID int64
	Title        string
	// Start is events.start_datetime; the local date stored in events.date
	// is its Asia/Seoul calendar date, as the backend stores it.
	Start        time.Time
	StartMinutes int
	LateMinutes  int
	FailMinutes  int
}

// Seoul is the backend's time zone (Django TIME_ZONE = 'Asia/Seoul').
var Seoul = mustLoad("Asia/Seoul")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		// Korea has used UTC+9 without daylight saving since 1988.
		return time.FixedZone("KST", 9*60*60)
	}
	return loc
}

// CreateEvent inserts an event as the Django backend does, at instant now.
func CreateEvent(ctx context.Context, db DB, e Event, now time.Time) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `
		INSERT INTO events (title, date, start_datetime, end_datetime, start_minutes, late_minutes, fail_minutes,
		                    location, attendance_type, created_at, updated_at, generation_id)
		VALUES ($1, $2, $3::timestamptz, $3::timestamptz + interval '2 hours', $4, $5, $6, 'Club room', 'QR', $7, $7, $8)
		RETURNING id`,
		e.Title, e.Start.In(Seoul).Format(time.DateOnly), e.Start, e.StartMinutes, e.LateMinutes, e.FailMinutes, now, e.GenerationID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("create event %q: %w", e.Title, err)
	}
	return id, nil
}

// AddAttendance appends an attendance row, as the backend does when a
// member checks in or an organiser changes a status.
func AddAttendance(ctx context.Context, db DB, eventID, mappingID int64, status int, createdAt time.Time) (int64, error) {
	var id int64
	err := db.QueryRow(ctx, `
		INSERT INTO attendances (status, "timestamp", created_at, modified_at, is_modified, event_id, generation_mapping_id)
		VALUES ($1, $2, $2, $2, false, $3, $4) RETURNING id`, status, createdAt, eventID, mappingID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("add attendance (event %d, mapping %d): %w", eventID, mappingID, err)
	}
	return id, nil
}

// CreateEventDueAt inserts, as the Django backend does, an event of
// generationID whose deadline (start + 30 minutes) is deadline.
func CreateEventDueAt(ctx context.Context, db DB, generationID int64, deadline time.Time) (int64, error) {
	return CreateEvent(ctx, db, Event{
		GenerationID: generationID,
		Title:        "Weekly meeting",
		Start:        deadline.Add(-30 * time.Minute),
		StartMinutes: -10,
		LateMinutes:  10,
		FailMinutes:  30,
	}, time.Now())
}
