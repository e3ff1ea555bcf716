package attendance

import "time"

// SetWebhookClock makes n read the time from now instead of time.Now, so
// that tests can send attempts from the past or the future without
// sleeping.
func SetWebhookClock(n *WebhookNotifier, now func() time.Time) { n.now = now }
