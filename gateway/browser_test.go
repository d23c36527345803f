//go:build chromium

// The dashboard in a real browser: Debian's headless Chromium, driven over
// the DevTools protocol. `make test` needs only Go, so this runs from
// .ci/run (go test -tags chromium), which installs the chromium package.

package gateway_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegw/edgegw/gateway/internal/peers"
)

// chromiumFlags are the ones this machine needs: no sandbox as root, and
// no background networking (the plant network has no internet either).
func chromium(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	exe := os.Getenv("CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("chromium not found at %s (apt-get install chromium, or set CHROMIUM)", exe)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1920, 1080),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// The first Run starts the browser, which lives as long as that
	// call's context: it gets no timeout; later steps do (see run).
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx, func() { cancelCtx(); cancelAlloc() }
}

// run does one step of the test, bounded to 30 s.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	runFor(t, ctx, 30*time.Second, what, actions...)
}

func runFor(t *testing.T, ctx context.Context, limit time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// The page shows a stopped machine and its firing alert, live; an operator
// acknowledges it with the token; the gateway restarts and the page
// reconnects by itself; the kiosk view has no controls.
func TestDashboardInChromium(t *testing.T) {
	s := newStack(t)
	port := peers.FreePort(t)
	token := filepath.Join(s.dir, "ack.token")
	if err := os.WriteFile(token, []byte("floor-7731\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dir, "gw.yaml")
	cfg := fmt.Sprintf(`gateway: {id: gw-browser, line: line1}
http: {listen: "127.0.0.1:%d"}
buffer: {path: %s/buffer.db}
mqtt: {url: %q, client_id: gw-browser}
uplink: {kafka: {brokers: [%q], linger: 20ms}}
alerts: {mqtt_topic: plant/test/alerts, ack_token_file: %s}
sensors:
  - {id: press_running, driver: mqtt, topic: line/press/running}
  - {id: press_temp, driver: mqtt, topic: line/press/temp, unit: C}
machines:
  - {name: press, running: "press_running == 1", min_downtime: 30s}
rules:
  - {name: press_down, expr: "press_running == 0", severity: critical, message: "Press stopped"}
`, port, s.dir, s.broker.URL(), s.kafka.Addr(), token)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := start(t, path)
	pub := peers.Client(t, s.broker.URL(), "plc")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/press/temp", "71.5", "press_temp")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/press/running", "0", "press_running")

	ctx, cancel := chromium(t)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	firing := `#alerts-firing [data-rule="press_down"]`
	run(t, ctx, "the page goes live and shows the stopped press and its alert",
		chromedp.Navigate(url),
		chromedp.WaitVisible(`body[data-connection="live"]`),
		chromedp.WaitVisible(`.machine[data-machine="press"][data-state="down"]`),
		chromedp.WaitVisible(firing+`[data-severity="critical"][data-acked="false"]`),
		chromedp.WaitVisible(`[data-sensor="press_temp"][data-stale="false"]`),
	)
	t.Logf("press tile: %q", value(t, ctx, "the machine tile's text", chromedp.Text(`.machine[data-machine="press"]`)))

	run(t, ctx, "a wrong token is refused",
		chromedp.Click(firing+` .a-btn`),
		chromedp.WaitVisible(`#ack-dialog[open] #ack-token`),
		chromedp.SendKeys(`#ack-token`, "guess"),
		chromedp.Click(`#ack-submit`),
		chromedp.WaitVisible(`#ack-error`),
		chromedp.WaitVisible(firing+`[data-acked="false"]`),
	)
	run(t, ctx, "the right token acknowledges",
		chromedp.WaitVisible(`#ack-dialog[open] #ack-token`),
		chromedp.SendKeys(`#ack-token`, "floor-7731"),
		chromedp.Click(`#ack-submit`),
		chromedp.WaitVisible(firing+`[data-acked="true"]`),
	)
	screenshot(t, ctx, "dashboard-acked.png")

	// A restart: the stream ends, the page says so, and comes back live by
	// itself to the new process, whose state (restored) it shows.
	if err := gw.stop(); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "the page notices the gateway went", chromedp.WaitVisible(`body[data-connection="reconnecting"]`))
	gw2 := start(t, path)
	peers.WaitReading(t, pub, gw2.g.Addr(), "line/press/temp", "72", "press_temp")
	run(t, ctx, "the page reconnects by itself",
		chromedp.WaitVisible(`body[data-connection="live"]`),
		chromedp.WaitVisible(`.machine[data-machine="press"]`),
		chromedp.WaitVisible(firing+`[data-acked="true"]`), // restored with the rules' state
	)

	run(t, ctx, "kiosk view",
		chromedp.Navigate(url+"?kiosk=1&machine=press"),
		chromedp.WaitVisible(`body[data-kiosk="1"][data-connection="live"]`),
		chromedp.WaitVisible(firing),
	)
	buttons := value(t, ctx, "kiosk buttons",
		chromedp.Evaluate[int](`document.querySelectorAll("button:not([hidden]):not(dialog button)").length`))
	if buttons != 0 {
		t.Errorf("kiosk view has %d visible buttons", buttons)
	}
}

// screenshot keeps the page as a PNG in $EDGEGW_SCREENSHOTS, if set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("EDGEGW_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := value(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Error(err)
	}
}

// TestDemoDashboard looks at the running demo (`make run`), whose page
// EDGEGW_DEMO_URL names: scripts/interop/dashboard-chromium starts the demo
// and runs this. Once the simulated press stops (it runs about 20 s, then
// stops about 40 s; press_down fires after 15 s of it) the page shows the
// machine down and the alert firing; screenshots of it and of the kiosk
// view are kept.
func TestDemoDashboard(t *testing.T) {
	url := os.Getenv("EDGEGW_DEMO_URL")
	if url == "" {
		t.Skip("EDGEGW_DEMO_URL is not set (scripts/interop/dashboard-chromium sets it)")
	}
	ctx, cancel := chromium(t)
	defer cancel()
	runFor(t, ctx, 150*time.Second, "the demo's press down with press_down firing",
		chromedp.Navigate(url),
		chromedp.WaitVisible(`body[data-connection="live"]`),
		chromedp.WaitVisible(`.machine[data-machine="press"][data-state="down"]`),
		chromedp.WaitVisible(`#alerts-firing [data-rule="press_down"]`),
		chromedp.WaitVisible(`[data-sensor="press_temp"][data-stale="false"]`),
		chromedp.Sleep(1500), // let the running timers move on from their first frame
	)
	t.Logf("press tile: %q", value(t, ctx, "the press tile", chromedp.Text(`.machine[data-machine="press"]`)))
	screenshot(t, ctx, "dashboard.png")
	run(t, ctx, "the kiosk view of the press",
		chromedp.Navigate(url+"?kiosk=1&machine=press"),
		chromedp.WaitVisible(`body[data-kiosk="1"][data-connection="live"]`),
		chromedp.WaitVisible(`.machine[data-machine="press"]`),
		chromedp.Sleep(1500),
	)
	if n := value(t, ctx, "kiosk buttons", chromedp.Evaluate[int](`document.querySelectorAll("button").length`)); n != 0 {
		t.Errorf("kiosk view has %d buttons", n)
	}
	screenshot(t, ctx, "dashboard-kiosk.png")
}
