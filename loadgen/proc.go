package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
)

// procStatusKB reads a "VmRSS"/"VmHWM" style field of /proc/<pid>/status,
// in bytes (pid 0: this process).
func procStatus(pid int, field string) (int64, error) {
	p := "/proc/self/status"
	if pid > 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			break
		}
		kb, err := strconv.ParseInt(fs[0], 10, 64)
		return kb * 1024, err
	}
	return 0, fmt.Errorf("%s: no %s", p, field)
}

// RaiseFileLimit raises this process's open-file soft limit to its hard
// limit (children inherit it) and returns the new soft limit.
func RaiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

// PullSpec is one initial sync run by a child process (`pryvsync bench
// --role replica`).
type PullSpec struct {
	Server, User, Token, Dir string
	// CPUProfile and HeapProfile, when set, receive the child's profiles.
	CPUProfile, HeapProfile string
}

// PullReport is what a pull measured.
type PullReport struct {
	Seconds float64 `json:"seconds"`
	Applied int     `json:"applied"`
	// PeakRSS is VmHWM of the pulling process, in bytes: the replica's own
	// in a child process, else this whole process's (server included).
	PeakRSS int64 `json:"peakRSS"`
	// CPU is the user and system CPU time of the pulling process, in
	// seconds: with a child process, the replica's own, which other load
	// on the machine does not inflate.
	CPU float64 `json:"cpu"`
}

// cpuSeconds is this process's user plus system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// Pull opens a fresh replica in spec.Dir, configures it and syncs once; it
// is the replica side of W1 and W4.
func Pull(ctx context.Context, spec PullSpec) (PullReport, error) {
	var rep PullReport
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return rep, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return rep, err
		}
		defer pprof.StopCPUProfile()
	}
	r, err := replica.Open(spec.Dir, replica.Options{})
	if err != nil {
		return rep, err
	}
	defer r.Close()
	if err := r.Configure(spec.Server, spec.User, spec.Token); err != nil {
		return rep, err
	}
	start, cpu0 := time.Now(), cpuSeconds()
	res, err := r.Sync(ctx)
	rep.Seconds = time.Since(start).Seconds()
	rep.CPU = cpuSeconds() - cpu0
	rep.Applied = res.Applied
	rep.PeakRSS, _ = procStatus(0, "VmHWM")
	if err != nil {
		return rep, err
	}
	if spec.HeapProfile != "" {
		if err := writeHeapProfile(spec.HeapProfile); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// PullChild is `pryvsync bench --role replica`: Pull, then the report as
// JSON on out.
func PullChild(ctx context.Context, spec PullSpec, out io.Writer) error {
	rep, err := Pull(ctx, spec)
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(rep)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// pull runs one pull: in a child process when c.Exec is set (so its peak
// RSS is the replica's own), else in this process.
func pull(ctx context.Context, c Config, spec PullSpec) (PullReport, error) {
	if len(c.Exec) == 0 {
		return Pull(ctx, spec)
	}
	args := append(append([]string{}, c.Exec[1:]...), "--role", "replica",
		"--server", spec.Server, "--user", spec.User, "--token", spec.Token, "--dir", spec.Dir)
	if spec.CPUProfile != "" {
		args = append(args, "--cpuprofile", spec.CPUProfile, "--memprofile", spec.HeapProfile)
	}
	cmd := exec.CommandContext(ctx, c.Exec[0], args...)
	cmd.Env = append(os.Environ(), c.ExecEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var rep PullReport
	if err := cmd.Run(); err != nil {
		return rep, fmt.Errorf("replica child: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return rep, fmt.Errorf("replica child: bad report %q: %w", stdout.String(), err)
	}
	return rep, nil
}

// ServeSpec is a bench server run by a child process (`pryvsync bench
// --role server`).
type ServeSpec struct {
	Dir, Listen, AdminKey string
	// HeapProfile, when set, receives a heap profile each time the process
	// gets SIGUSR1 (W5 asks for one while its connections are idle).
	// CPUProfile, when set, receives the CPU profile of the run: with
	// HeapProfile set, from the first SIGUSR1 on (W5's writes), else whole.
	HeapProfile, CPUProfile string
}

// ServeChild is `pryvsync bench --role server`: it serves a bench server
// (SyncWrites on, no per-user connection cap), writes {"url": …} on out,
// and runs until stdin closes or ctx ends.
func ServeChild(ctx context.Context, spec ServeSpec, stdin io.Reader, out io.Writer) error {
	RaiseFileLimit()
	cpuStarted := false
	startCPU := func() error {
		if spec.CPUProfile == "" || cpuStarted {
			return nil
		}
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		cpuStarted = true
		return nil
	}
	defer func() {
		if cpuStarted {
			pprof.StopCPUProfile()
		}
	}()
	if spec.HeapProfile == "" {
		if err := startCPU(); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		return err
	}
	srv, url, hs, err := startServer(spec.Dir, spec.AdminKey, "", ln, nil)
	if err != nil {
		ln.Close()
		return err
	}
	defer func() {
		srv.Close()
		hs.Close()
	}()
	if err := json.NewEncoder(out).Encode(map[string]string{"url": url}); err != nil {
		return err
	}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(eof)
	}()
	usr1 := make(chan os.Signal, 1)
	if spec.HeapProfile != "" {
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-eof:
			return nil
		case <-usr1:
			if err := writeHeapProfile(spec.HeapProfile); err != nil {
				return err
			}
			if err := startCPU(); err != nil {
				return err
			}
		}
	}
}

// childServer is a bench server in its own process (W5: its memory is then
// the server's alone, and each side has the whole open-file limit).
type childServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
	admin string
	dir   string
}

// startChildServer starts a bench server in a child process; with
// profiles set, it writes its CPU profile to <profiles>.cpu.pprof and heap
// profiles (on request) to <profiles>.heap.pprof.
func startChildServer(ctx context.Context, c Config, dir, profiles string) (*childServer, error) {
	admin := model.NewToken()
	args := append(append([]string{}, c.Exec[1:]...), "--role", "server",
		"--dir", filepath.Join(dir, "server"), "--listen", "127.0.0.1:0", "--admin-key", admin)
	if profiles != "" {
		args = append(args, "--memprofile", profiles+".heap.pprof", "--cpuprofile", profiles+".cpu.pprof")
	}
	cmd := exec.Command(c.Exec[0], args...)
	cmd.Env = append(os.Environ(), c.ExecEnv...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cs := &childServer{cmd: cmd, stdin: stdin, admin: admin, dir: dir}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		var hello struct {
			URL string `json:"url"`
		}
		if !ok || json.Unmarshal([]byte(l), &hello) != nil || hello.URL == "" {
			cs.stop()
			return nil, errors.New("server child: no address reported")
		}
		cs.url = hello.URL
	case <-time.After(60 * time.Second):
		cs.stop()
		return nil, errors.New("server child: did not start in 60 s")
	case <-ctx.Done():
		cs.stop()
		return nil, ctx.Err()
	}
	return cs, nil
}

func (cs *childServer) pid() int { return cs.cmd.Process.Pid }

// heapProfile asks the child for a heap profile and gives it time to write.
func (cs *childServer) heapProfile() {
	if cs.cmd.Process.Signal(syscall.SIGUSR1) == nil {
		time.Sleep(2 * time.Second)
	}
}

func (cs *childServer) stop() {
	cs.stdin.Close()
	done := make(chan struct{})
	go func() { _ = cs.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cs.cmd.Process.Kill()
		<-done
	}
}
