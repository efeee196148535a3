package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/tmsd/tmsd/internal/alerts"
)

// newEmailDeliverer sends each event as one plain-text message, on a
// connection of its own: alerts are rare, a kept-open session would time out.
func newEmailDeliverer(e *Email, timeout time.Duration) (deliverFunc, error) {
	host, portStr, _ := net.SplitHostPort(e.Server) // validated
	port, _ := strconv.Atoi(portStr)
	opts := []mail.Option{
		mail.WithPort(port),
		mail.WithTimeout(timeout),
		mail.WithTLSConfig(&tls.Config{
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: e.InsecureSkipVerify, //nolint:gosec // opt-in, for self-signed relays
		}),
	}
	switch e.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		// Mandatory: a relay that does not offer STARTTLS is refused
		// rather than given the password in clear.
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if e.Username != "" {
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin),
			mail.WithUsername(e.Username), mail.WithPassword(e.Password))
	}
	client, err := mail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	return func(ctx context.Context, ev *alerts.Event) error {
		m := mail.NewMsg()
		if err := m.From(e.From); err != nil {
			return fmt.Errorf("%w: email from: %w", ErrRefused, err)
		}
		if err := m.To(e.To...); err != nil {
			return fmt.Errorf("%w: email to: %w", ErrRefused, err)
		}
		m.Subject(emailSubject(ev))
		m.SetDate()
		m.SetMessageID()
		m.SetBodyString(mail.TypeTextPlain, emailBody(ev))
		if err := client.DialAndSendWithContext(ctx, m); err != nil {
			return classifySMTP(err)
		}
		return nil
	}, nil
}

// classifySMTP marks as refused a permanent (5xx) reply to the message
// itself; connection, TLS and authentication failures are retried, since a
// relay being reconfigured fixes them.
func classifySMTP(err error) error {
	var se *mail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
		switch se.Reason {
		case mail.ErrSMTPMailFrom, mail.ErrSMTPRcptTo, mail.ErrSMTPData, mail.ErrSMTPDataClose:
			return fmt.Errorf("%w: smtp: %w", ErrRefused, err)
		}
	}
	return fmt.Errorf("notify: smtp: %w", err)
}
