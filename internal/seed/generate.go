package seed

import (
	"context"
	"fmt"
	"time"
)

// Shape describes a generated data set.
type Shape struct {
	// Generations is the number of clubs, each with one generation.
	Generations int
	// Members is the number of current members of each generation.
	Members int
	// DueEvents is the number of events whose deadline passed within the
	// last hour, spread over the generations.
	DueEvents int
	// HistoryEvents is the number of events whose deadline is 30 days and
	// more in the past (outside any lookback), each spread over the
	// generations in turn, and every current member of the generation
	// holding a settled (PRESENT or ABSENT) row for it.
	HistoryEvents int
}

// Counts says what Generate wrote.
type Counts struct {
	Members        int64
	Mappings       int64
	Events         int64
	Attendances    int64
	DeletedMembers int64
}

// Generate writes a data set of the shape "Generations x Members current
// members, DueEvents due events, 30% of (due event, member) pairs already
// holding a row (40% UNCHECKED, 40% PRESENT, 20% LATE), 2% soft-deleted
// members, 10% extra non-current mappings", plus HistoryEvents settled
// events in the past. The choice of which pairs hold rows is a fixed hash,
// so that every run of a benchmark works on the same data. Everything is
// written with set-based statements at instant now.
func Generate(ctx context.Context, db DB, shape Shape, now time.Time) (*Counts, error) {
	if shape.Generations < 1 || shape.Members < 1 || shape.DueEvents < 0 || shape.HistoryEvents < 0 {
		return nil, fmt.Errorf("generate: shape %+v: generations and members must be positive, events not negative", shape)
	}
	steps := []struct {
		name string
		sql  string
		args []any
	}{
		{"clubs", `
			INSERT INTO club_club (name, created_at, updated_at)
			SELECT 'Club ' || g, $1, $1 FROM generate_series(1, $2) g`, []any{now, shape.Generations}},
		{"generations", `
			INSERT INTO club_generation (is_deleted, name, activated, start_date, created_at, updated_at, auto_approve, club_id)
			SELECT false, 'Gen 1', true, $1::timestamptz::date, $1, $1, false, c.id FROM club_club c`, []any{now}},
		{"members", `
			INSERT INTO club_member (is_deleted, created_at, updated_at, club_id, user_id)
			SELECT n % 50 = 7, $1, $1, c.id, c.id * 1000000 + n
			FROM club_club c, generate_series(1, $2) n`, []any{now, shape.Members}},
		{"current mappings", `
			INSERT INTO generation_mapping (created_at, updated_at, is_current, generation_id, member_id)
			SELECT $1, $1, true, g.id, m.id
			FROM club_member m JOIN club_generation g ON g.club_id = m.club_id`, []any{now}},
		{"non-current mappings", `
			INSERT INTO generation_mapping (created_at, updated_at, is_current, generation_id, member_id)
			SELECT $1, $1, false, g.id, m.id
			FROM club_member m JOIN club_generation g ON g.club_id = m.club_id
			WHERE m.id % 10 = 3`, []any{now}},
		{"due events", `
			INSERT INTO events (title, date, start_datetime, end_datetime, start_minutes, late_minutes, fail_minutes,
			                    location, attendance_type, created_at, updated_at, generation_id)
			SELECT 'Due ' || n, ($1::timestamptz - interval '1 hour')::date, s, s + interval '2 hours', -10, 10, 30,
			       'Club room', 'QR', $1, $1, g.id
			FROM generate_series(1, $2) n
			CROSS JOIN LATERAL (SELECT $1::timestamptz - interval '30 minutes' - (n % 60) * interval '1 minute' AS s) t
			JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM club_generation) g ON g.i = n % $3`,
			[]any{now, shape.DueEvents, shape.Generations}},
		{"due attendances", `
			INSERT INTO attendances (status, "timestamp", created_at, modified_at, is_modified, event_id, generation_mapping_id)
			SELECT CASE WHEN h % 10 < 4 THEN 0 WHEN h % 10 < 8 THEN 1 ELSE 2 END, $1, $1, $1, false, e.id, gm.id
			FROM events e
			JOIN generation_mapping gm ON gm.generation_id = e.generation_id AND gm.is_current
			CROSS JOIN LATERAL (SELECT abs(hashint8(e.id * 1000003 + gm.id)) AS h) x
			WHERE e.title LIKE 'Due %' AND (h / 10) % 10 < 3`, []any{now}},
		{"history events", `
			INSERT INTO events (title, date, start_datetime, end_datetime, start_minutes, late_minutes, fail_minutes,
			                    location, attendance_type, created_at, updated_at, generation_id)
			SELECT 'Past ' || n, s::date, s, s + interval '2 hours', -10, 10, 30, 'Club room', 'QR', s, s, g.id
			FROM generate_series(1, $2) n
			CROSS JOIN LATERAL (SELECT $1::timestamptz - interval '30 days' - n * interval '1 hour' AS s) t
			JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM club_generation) g ON g.i = n % $3`,
			[]any{now, shape.HistoryEvents, shape.Generations}},
		{"history attendances", `
			INSERT INTO attendances (status, "timestamp", created_at, modified_at, is_modified, event_id, generation_mapping_id)
			SELECT CASE WHEN gm.id % 4 = 0 THEN 3 ELSE 1 END, e.start_datetime, e.start_datetime, e.start_datetime,
			       gm.id % 4 = 0, e.id, gm.id
			FROM events e
			JOIN generation_mapping gm ON gm.generation_id = e.generation_id AND gm.is_current
			WHERE e.title LIKE 'Past %'`, nil},
	}
	for _, step := range steps {
		if _, err := db.Exec(ctx, step.sql, step.args...); err != nil {
			return nil, fmt.Errorf("generate %s: %w", step.name, err)
		}
	}
	c := &Counts{}
	err := db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM club_member),
		(SELECT count(*) FROM generation_mapping),
		(SELECT count(*) FROM events),
		(SELECT count(*) FROM attendances),
		(SELECT count(*) FROM club_member WHERE is_deleted)`).Scan(&c.Members, &c.Mappings, &c.Events, &c.Attendances, &c.DeletedMembers)
	if err != nil {
		return nil, fmt.Errorf("generate: count: %w", err)
	}
	if _, err := db.Exec(ctx, `ANALYZE club_member, generation_mapping, events, attendances`); err != nil {
		return nil, fmt.Errorf("generate: analyze: %w", err)
	}
	return c, nil
}
