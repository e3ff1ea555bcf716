package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/wasso/scheduler/internal/wassotest"
)

// chromiumPath is where Debian's chromium package installs the browser
// (apt-get install -y chromium).
const chromiumPath = "/usr/bin/chromium"

// TestRiverUIInChromium: River UI, served by the runner under /riverui/,
// renders in a real headless Chromium and shows the runner's jobs and
// queues. Set WASSO_TEST_SCREENSHOTS to a directory to keep screenshots.
func TestRiverUIInChromium(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("%s not found: install Chromium (apt-get install -y chromium) to run the browser test", chromiumPath)
	}
	db := newDB(t, wassotest.Options{})
	p := startRunner(t, db, cliOpts{}, "--sweep-interval", "2s")
	base := p.baseURL(t)
	require.Eventually(t, func() bool {
		return countNoFail(db, `SELECT count(*) FROM river_job WHERE kind = 'attendance.sweep' AND state = 'completed'`) >= 1
	}, time.Minute, 100*time.Millisecond)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // tests run as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// No network but loopback here: keep Chromium from trying.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	// pageShows navigates and waits until the rendered text contains want
	// (River UI is a single-page app: the text appears once its API calls
	// return).
	pageShows := func(path string, want ...string) {
		t.Helper()
		require.NoError(t, chromedp.Do(browser, chromedp.Navigate(base+path)))
		var text string
		require.Eventually(t, func() bool {
			var err error
			text, err = chromedp.Run(browser, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			if err != nil {
				return false
			}
			for _, w := range want {
				if !strings.Contains(text, w) {
					return false
				}
			}
			return true
		}, time.Minute, 200*time.Millisecond, "page %s never showed %q; it shows:\n%s", path, want, text)
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100)) // quality 100: PNG
		require.NoError(t, err)
		require.NotEmpty(t, png)
		dir := os.Getenv("WASSO_TEST_SCREENSHOTS")
		if dir == "" {
			dir = t.TempDir()
		}
		name := strings.Trim(strings.NewReplacer("/", "_", "?", "_", "=", "_").Replace(path), "_") + ".png"
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), png, 0o644))
	}

	pageShows("/riverui/jobs?state=completed", "attendance.sweep")
	pageShows("/riverui/queues", "default")

	// The app's links stay under the prefix: following the root redirect
	// lands on River UI.
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(base+"/")))
	location, err := chromedp.Run(browser, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(location, base+"/riverui/"), location)
}
