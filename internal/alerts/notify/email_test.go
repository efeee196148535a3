package notify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

const (
	smtpUser = "tmsd"
	smtpPass = "hunter2"
)

type smtpMessage struct {
	from string
	to   []string
	data []byte
	tls  bool
	user string
}

// smtpRecorder is a go-smtp backend that requires AUTH PLAIN and records
// each message with whether it came over TLS.
type smtpRecorder struct {
	mu   sync.Mutex
	msgs []smtpMessage
	got  chan smtpMessage
}

func (r *smtpRecorder) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{rec: r, conn: c}, nil
}

func (r *smtpRecorder) messages() []smtpMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]smtpMessage(nil), r.msgs...)
}

type smtpSession struct {
	rec  *smtpRecorder
	conn *smtp.Conn
	user string
	msg  smtpMessage
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != smtpUser || password != smtpPass {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.msg = smtpMessage{from: from, user: s.user}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == "nobody@example.org" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = data
	_, s.msg.tls = s.conn.TLSConnectionState()
	s.rec.mu.Lock()
	s.rec.msgs = append(s.rec.msgs, s.msg)
	s.rec.mu.Unlock()
	select {
	case s.rec.got <- s.msg:
	default:
	}
	return nil
}

func (s *smtpSession) Reset()        { s.msg = smtpMessage{} }
func (s *smtpSession) Logout() error { return nil }

// selfSigned is a certificate for 127.0.0.1 valid for the test's hour.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startSMTP serves on 127.0.0.1:0, offering STARTTLS when withTLS.
func startSMTP(t *testing.T, withTLS bool) (*smtpRecorder, string) {
	t.Helper()
	rec := &smtpRecorder{got: make(chan smtpMessage, 10)}
	s := smtp.NewServer(rec)
	s.Domain = "localhost"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	if withTLS {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MinVersion: tls.VersionTLS12}
	} else {
		s.AllowInsecureAuth = true // so only the missing STARTTLS can fail
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return rec, ln.Addr().String()
}

func emailConfig(server string, mutate func(e *Email)) Configuration {
	e := &Email{
		Server: server, Username: smtpUser, Password: smtpPass,
		From: "tmsd@example.org", To: []string{"noc@example.org", "oncall@example.org"},
		InsecureSkipVerify: true,
	}
	if mutate != nil {
		mutate(e)
	}
	cfg := DefaultConfiguration()
	cfg.Targets = []Target{{Name: "ops-mail", Type: TypeEmail, Email: e}}
	return cfg
}

// readMessage parses an RFC 5322 message and decodes its subject and its
// single text body.
func readMessage(t *testing.T, data []byte) (mail.Header, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	m.Header["Subject"] = []string{subject}
	mediaType, _, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "text/plain", mediaType)
	var body io.Reader = m.Body
	switch strings.ToLower(m.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	require.NoError(t, err)
	return m.Header, string(b)
}

func TestEmailSTARTTLSAndAuth(t *testing.T) {
	rec, addr := startSMTP(t, true)
	n := start(t, emailConfig(addr, nil), Dependencies{})
	ev := sampleEvent(7)
	require.NoError(t, n.Send([]string{"ops-mail"}, ev))

	var msg smtpMessage
	select {
	case msg = <-rec.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	require.True(t, msg.tls, "message over TLS")
	require.Equal(t, smtpUser, msg.user)
	require.Equal(t, "tmsd@example.org", msg.from)
	require.Equal(t, []string{"noc@example.org", "oncall@example.org"}, msg.to)

	h, body := readMessage(t, msg.data)
	require.Equal(t, "[tmsd FIRING] https-spike: 443/tcp https 8.40 Gbps > 8.00 Gbps", h.Get("Subject"))
	for _, want := range []string{
		ev.Summary,
		"Rule:      https-spike",
		"Key:       dport 443/tcp https",
		"Value:     8.40 Gbps",
		"Threshold: 8.00 Gbps (baseline 4.00 Gbps)",
		"At:        2026-12-03 15:04:00 UTC",
		"Open in tmsd: " + ev.URL,
	} {
		require.Contains(t, body, want)
	}
	require.Len(t, rec.messages(), 1)
}

func TestEmailTLSFailures(t *testing.T) {
	plainRec, plainAddr := startSMTP(t, false)
	tlsRec, tlsAddr := startSMTP(t, true)
	cases := []struct {
		name    string
		cfg     Configuration
		rec     *smtpRecorder
		wantErr string
	}{
		{"starttls required", emailConfig(plainAddr, nil), plainRec, "does not support STARTTLS"},
		{"certificate verified", emailConfig(tlsAddr, func(e *Email) { e.InsecureSkipVerify = false }),
			tlsRec, "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg, Dependencies{})
			require.NoError(t, err)
			ev := sampleEvent(0)
			err = n.targets["ops-mail"].deliver(t.Context(), &ev)
			require.ErrorContains(t, err, tc.wantErr)
			require.NotErrorIs(t, err, ErrRefused, "retried: the relay may be fixed")
			require.Empty(t, tc.rec.messages())
		})
	}
}

func TestEmailBadPassword(t *testing.T) {
	rec, addr := startSMTP(t, true)
	n, err := New(emailConfig(addr, func(e *Email) { e.Password = "wrong" }), Dependencies{})
	require.NoError(t, err)
	ev := sampleEvent(0)
	err = n.targets["ops-mail"].deliver(t.Context(), &ev)
	require.ErrorContains(t, err, "SMTP AUTH failed")
	require.NotErrorIs(t, err, ErrRefused, "credentials can be fixed on the relay")
	require.Empty(t, rec.messages())
}

func TestEmailRefusedRecipient(t *testing.T) {
	rec, addr := startSMTP(t, true)
	n, err := New(emailConfig(addr, func(e *Email) { e.To = []string{"nobody@example.org"} }), Dependencies{})
	require.NoError(t, err)
	ev := sampleEvent(0)
	err = n.targets["ops-mail"].deliver(t.Context(), &ev)
	require.ErrorIs(t, err, ErrRefused, "a 550 to RCPT is final")
	require.ErrorContains(t, err, "no such user")
	require.Empty(t, rec.messages())
}
