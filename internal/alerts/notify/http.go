package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tmsd/tmsd/internal/alerts"
)

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the webhook
// body keyed with the target's secret.
const SignatureHeader = "X-Tmsd-Signature"

func newDeliverer(tc *Target, client *http.Client, timeout time.Duration) (deliverFunc, error) {
	var payload func(ev *alerts.Event, now time.Time) ([]byte, error)
	endpoint := tc.URL
	switch tc.Type {
	case TypeWebhook:
		payload = func(ev *alerts.Event, _ time.Time) ([]byte, error) { return webhookPayload(ev) }
	case TypeSlack:
		payload = func(ev *alerts.Event, _ time.Time) ([]byte, error) { return slackPayload(ev) }
	case TypeTeams:
		payload = func(ev *alerts.Event, _ time.Time) ([]byte, error) { return teamsPayload(ev) }
	case TypeAlertmanager:
		payload = alertmanagerPayload
		var err error
		if endpoint, err = url.JoinPath(tc.URL, "/api/v2/alerts"); err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
	case TypeEmail:
		return newEmailDeliverer(tc.Email, timeout)
	}
	h := &httpTarget{client: client, url: endpoint, secret: []byte(tc.Secret), headers: tc.Headers}
	return func(ctx context.Context, ev *alerts.Event) error {
		body, err := payload(ev, time.Now())
		if err != nil {
			// An event that cannot be encoded (a NaN value) never will be.
			return fmt.Errorf("%w: encode: %w", ErrRefused, err)
		}
		return h.post(ctx, body)
	}, nil
}

type httpTarget struct {
	client  *http.Client
	url     string
	secret  []byte
	headers map[string]string
}

func (h *httpTarget) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tmsd-alerts")
	for k, v := range h.headers {
		req.Header.Set(k, v)
	}
	if len(h.secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(h.secret, body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("notify: post: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 300 && resp.StatusCode >= 200 {
		return nil
	}
	herr := &httpError{status: resp.StatusCode, body: strings.TrimSpace(string(snippet))}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs > 0 {
			herr.retryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			herr.retryAfter = time.Until(t)
		}
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("%w: %w", ErrRefused, herr)
	}
	return herr
}

type httpError struct {
	status     int
	body       string
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	return fmt.Sprintf("notify: HTTP %d %s: %q", e.status, http.StatusText(e.status), e.body)
}

func (e *httpError) RetryAfter() time.Duration { return e.retryAfter }

// Sign returns the X-Tmsd-Signature value of body: "sha256=" and the hex
// HMAC-SHA256 of body keyed with secret. Receivers recompute it and compare
// with hmac.Equal.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
