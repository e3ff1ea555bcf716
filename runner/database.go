package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	wassoriver "github.com/wasso/scheduler/river"
)

// errNoDatabaseURL is returned by commands that need a database when none
// is configured.
var errNoDatabaseURL = errors.New("not set: pass --database-url, or set WASSO_DATABASE_URL or DATABASE_URL, or database_url in the config file")

// poolOptions tunes openPool.
type poolOptions struct {
	// MaxConns overrides the configured pool size when the config leaves
	// it automatic (zero).
	MaxConns int32
}

// openPool connects to the configured database and pings it. Any failure
// is a *ConfigError (exit 2, nothing started), and its message never holds
// the password.
func (a *app) openPool(ctx context.Context, opts poolOptions) (*pgxpool.Pool, error) {
	cfg := a.cfg
	if cfg.DatabaseURL == "" {
		return nil, &ConfigError{Key: "database_url", Err: errNoDatabaseURL}
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx masks the password in its parse errors; the redactor is a
		// second line of defence.
		return nil, &ConfigError{Key: "database_url", Source: cfg.Source("database_url"), Err: errors.New(a.redact.redact(oneLine(err.Error())))}
	}
	a.redact.add(poolCfg.ConnConfig.Password)
	if _, ok := poolCfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		poolCfg.ConnConfig.RuntimeParams["application_name"] = "wasso-runner"
	}
	if !strings.Contains(cfg.DatabaseURL, "default_query_exec_mode") {
		// Statements are sent unnamed, parsed and bound in one round trip:
		// named prepared statements, pgx's default, outlive a transaction
		// and fail behind a pooler in transaction mode (PgBouncer), where
		// the next transaction may run on another server connection. The
		// hot statements of the settlement run this way already, to be
		// planned with their actual values.
		poolCfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	switch {
	case cfg.Database.MaxConns > 0:
		poolCfg.MaxConns = int32(cfg.Database.MaxConns)
	case opts.MaxConns > 0:
		poolCfg.MaxConns = opts.MaxConns
	default:
		poolCfg.MaxConns = 4
	}
	if poolCfg.ConnConfig.ConnectTimeout == 0 || poolCfg.ConnConfig.ConnectTimeout > cfg.Database.ConnectTimeout {
		poolCfg.ConnConfig.ConnectTimeout = cfg.Database.ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("database: %s", a.redact.redact(oneLine(err.Error())))}
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.Database.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConfigError{Err: a.connectError(poolCfg.ConnConfig, err)}
	}
	a.logger.DebugContext(ctx, "connected to database", slog.String("database", describeDB(poolCfg.ConnConfig)), slog.Int("max_conns", int(poolCfg.MaxConns)))
	return pool, nil
}

// openListenPool connects to database.listen_url, a direct connection
// for LISTEN alone, or returns nil when it is not set. Like openPool, a
// failure is a *ConfigError naming the key.
func (a *app) openListenPool(ctx context.Context) (*pgxpool.Pool, error) {
	url := a.cfg.Database.ListenURL
	if url == "" {
		return nil, nil
	}
	poolCfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, &ConfigError{Key: "database.listen_url", Source: a.cfg.Source("database.listen_url"), Err: errors.New(a.redact.redact(oneLine(err.Error())))}
	}
	a.redact.add(poolCfg.ConnConfig.Password)
	if _, ok := poolCfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		poolCfg.ConnConfig.RuntimeParams["application_name"] = "wasso-runner-listen"
	}
	// River's notifier, the schedule loop's listener and the start-up
	// check of notifications.
	poolCfg.MaxConns = 3
	if poolCfg.ConnConfig.ConnectTimeout == 0 || poolCfg.ConnConfig.ConnectTimeout > a.cfg.Database.ConnectTimeout {
		poolCfg.ConnConfig.ConnectTimeout = a.cfg.Database.ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, &ConfigError{Key: "database.listen_url", Err: errors.New(a.redact.redact(oneLine(err.Error())))}
	}
	pingCtx, cancel := context.WithTimeout(ctx, a.cfg.Database.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConfigError{Key: "database.listen_url", Err: a.connectError(poolCfg.ConnConfig, err)}
	}
	return pool, nil
}

// checkNotify says whether notifications reach this runner (see
// wassoriver.CheckNotify): nil when they do, the reason when they do not
// or could not be checked, logged once as a warning that names
// database.listen_url.
func (a *app) checkNotify(ctx context.Context, pool, listen *pgxpool.Pool) error {
	err := wassoriver.CheckNotify(ctx, pool, listen, 0)
	if err == nil || ctx.Err() != nil {
		return err
	}
	a.logger.WarnContext(ctx, "notifications do not arrive: jobs, deadlines and schedule changes wait for polls instead of waking the runners",
		slog.String("error", a.redact.redact(oneLine(err.Error()))), slog.String("key", "database.listen_url"), slog.String("hint", notifyHint(listen != nil)))
	return err
}

// warnSessionPooler logs sessionPoolerWarning once when database_url goes
// through a pooler in session mode; delivered is checkNotify's verdict.
func (a *app) warnSessionPooler(ctx context.Context, pool, listen *pgxpool.Pool, delivered bool) {
	if listen == nil && sessionPooled(ctx, pool, delivered) {
		a.logger.WarnContext(ctx, sessionPoolerWarning, slog.String("key", "database.max_conns"))
	}
}

// sessionPoolerWarning is what run logs and setup prints when database_url
// goes through a pooler in session mode.
const sessionPoolerWarning = "database_url goes through a connection pooler in session mode: each connection of a runner holds a server connection for as long as it lives, " +
	"so the pooler's pool_size must cover database.max_conns of every runner, or their queries wait in its queue; " +
	"transaction mode, with database.listen_url for notifications, shares server connections"

// throughPooler says whether the connections of pool reach the server
// through a connection pooler: the backend a pooler hands out is not the
// one the client was given at its start (PgBouncer, like other poolers,
// answers the startup with a process ID and cancel key of its own).
func throughPooler(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("look for a connection pooler: %w", err)
	}
	defer conn.Release()
	var backend uint32
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return false, fmt.Errorf("look for a connection pooler: %w", err)
	}
	return backend != conn.Conn().PgConn().PID(), nil
}

// sessionPooled says whether database_url goes through a pooler in
// session mode: a pooler is in between, and notifications sent and
// listened for through it arrive, which transaction pooling never lets
// them do. listenDelivered is the result of the notification check
// through database_url itself (database.listen_url unset).
func sessionPooled(ctx context.Context, pool *pgxpool.Pool, listenDelivered bool) bool {
	if !listenDelivered {
		return false
	}
	pooled, err := throughPooler(ctx, pool)
	return err == nil && pooled
}

// notifyHint says what to do about notifications that do not arrive.
func notifyHint(listenURLSet bool) string {
	if listenURLSet {
		return "database.listen_url must be a direct connection to the database, not through a pooler"
	}
	return "set database.listen_url (WASSO_DATABASE_LISTEN_URL) to a direct connection to the database, bypassing the pooler"
}

// connectError says why the first connection failed, in the terms an
// operator acts on: a login the server refused (wrong user or password), a
// database that does not exist, or a server that did not answer (down,
// firewalled, or silent past database.connect_timeout).
func (a *app) connectError(c *pgx.ConnConfig, err error) error {
	what, hint := "database unreachable", ""
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgerrcode.IsInvalidAuthorizationSpecification(pgErr.Code):
		// Class 28, invalid authorization specification: no such role,
		// wrong password, no pg_hba.conf entry.
		what, hint = "database refused the login", " (check the user and password of database_url)"
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InvalidCatalogName:
		what, hint = "database does not exist", " (check the database name of database_url)"
	case strings.Contains(err.Error(), "read only connection"):
		// pgx refused every host for target_session_attrs=read-write.
		what, hint = "database is read-only", " (every host of database_url is a standby or refuses writes: list the primary among its hosts)"
	case errors.Is(err, context.DeadlineExceeded):
		hint = fmt.Sprintf(" (no answer within the connect timeout, %s: database.connect_timeout, or connect_timeout in database_url if shorter)", c.ConnectTimeout)
	}
	return fmt.Errorf("%s (%s): %s%s", what, describeDB(c), a.redact.redact(oneLine(err.Error())), hint)
}

// describeDB names a database without its password: user@host:port/db.
func describeDB(c *pgx.ConnConfig) string {
	return c.User + "@" + c.Host + ":" + strconv.Itoa(int(c.Port)) + "/" + c.Database
}

// qualify returns a table name of River's, schema-qualified when a schema
// is configured (River's tables follow Config.Schema, not search_path).
func (a *app) qualify(table string) string {
	if a.cfg.Schema == "" {
		return pgx.Identifier{table}.Sanitize()
	}
	return pgx.Identifier{a.cfg.Schema, table}.Sanitize()
}
