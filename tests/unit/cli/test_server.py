"""The command-line layer: options, the services they build, the plugins."""

from __future__ import annotations

import io
import re
import signal
import sys
from typing import Callable

from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from uppercase.cli import client as twistdClient
from uppercase.cli import earlysignals
from uppercase.cli import server as twistdServer
from uppercase.cli.server import CannotStart, ServerOptions
from uppercase.cli.signals import SignalHandling
from uppercase.server._faults import MAX_FAULTS, MAX_SPEC_LENGTH
from uppercase.server._settings import DEFAULTS, checkServerEndpoint
from uppercase.service import UppercaseService


def assertUsageErrorsName(
    case: SynchronousTestCase,
    parse: Callable[..., object],
    cases: list[tuple[str, str]],
) -> None:
    """
    Each C{(option, value)} is a usage error whose message names the option.
    """
    for option, value in cases:
        error = case.assertRaises(usage.UsageError, parse, option, value)
        case.assertIn(option, str(error))


class _FailingOutput(io.StringIO):
    """
    Standard output whose every write fails with a given error, and which has
    no file descriptor.
    """

    def __init__(self, error: OSError) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no descriptor")


class ServerOptionsTests(SynchronousTestCase):
    """
    C{twistd uppercase} options.
    """

    def parse(self, *argv: str) -> twistdServer.ServerOptions:
        options = twistdServer.ServerOptions()
        options.parseOptions(list(argv))
        return options

    def test_defaults(self) -> None:
        """
        With no options: port 9527 on all interfaces, data logged, and the
        documented limits.
        """
        options = self.parse()
        self.assertEqual(options.settings, DEFAULTS)
        self.assertEqual(options["listen"], ["tcp:9527"])
        self.assertFalse(options["quiet"])
        self.assertEqual(options["idle-timeout"], 300.0)
        self.assertEqual(options["max-connections"], 10000)
        self.assertEqual(options["max-per-ip"], 0)
        self.assertEqual(options["shutdown-timeout"], 10.0)

    def test_severalListen(self) -> None:
        """
        C{--listen} may be given several times, and replaces the default.
        """
        options = self.parse("--listen", "tcp:1234", "-l", "unix:/tmp/u.sock", "-q")
        self.assertEqual(options["listen"], ["tcp:1234", "unix:/tmp/u.sock"])
        self.assertTrue(options["quiet"])

    def test_plain(self) -> None:
        """
        C{--plain} makes the server's factory echo unchanged (RFC 862); the
        uppercase echo is the default.
        """
        self.assertFalse(self.parse().settings.plain)
        options = self.parse("--plain")
        self.assertTrue(options.settings.plain)
        factory = twistdServer.makeFactory(options.settings, MemoryReactorClock())
        self.assertTrue(factory.plain)

    def test_malformedListen(self) -> None:
        """
        A malformed endpoint is a usage error that names it.
        """
        for bad in ["nosuch:1", "tcp:notaport", "tcp:port=1:bogus=2"]:
            error = self.assertRaises(usage.UsageError, self.parse, "--listen", bad)
            self.assertIn(repr(bad), str(error))

    def test_systemdSocketMissing(self) -> None:
        """
        A C{systemd:} endpoint whose socket systemd did not pass (here, none
        was) is a usage error that says so, and why that happens (sockets
        passed without names), not Twisted's "list index out of range".
        """
        for bad, which in [
            ("systemd:domain=INET:index=0", "with index 0"),
            ("haproxy:systemd:domain=INET6:name=web", "named 'web'"),
        ]:
            error = str(self.assertRaises(usage.UsageError, self.parse, "--listen", bad))
            self.assertEqual(
                error,
                f"--listen {bad!r} is not a valid endpoint: systemd passed this process no "
                f"socket {which} (Twisted takes systemd's sockets only when systemd names "
                "them, as systemd 227 and later do; systemd-socket-activate needs --fdname)",
            )

    def test_workerParsesNoSystemdEndpoint(self) -> None:
        """
        A worker of C{--workers} does not look for systemd's sockets (its
        supervisor has them, and passes them): a C{systemd:} endpoint is
        accepted; any other is still checked.
        """
        import os

        from uppercase.workers.worker import WORKER_ENV, WorkerSpec

        os.environ[WORKER_ENV] = WorkerSpec(1, (4,), 3).toEnvironment()
        self.addCleanup(os.environ.pop, WORKER_ENV)
        options = self.parse("--listen", "haproxy:systemd:domain=INET:index=0")
        self.assertEqual(options["listen"], ["haproxy:systemd:domain=INET:index=0"])
        self.assertRaises(usage.UsageError, self.parse, "--listen", "tcp:notaport")

    def test_badNumbers(self) -> None:
        """
        Negative, non-numeric and non-finite values are usage errors naming
        the option.
        """
        assertUsageErrorsName(
            self,
            self.parse,
            [
                ("--idle-timeout", "-1"),
                ("--idle-timeout", "soon"),
                ("--shutdown-timeout", "nan"),
                ("--max-connections", "-5"),
                ("--max-per-ip", "1.5"),
                ("--udp-rate", "-1"),
                ("--udp-rate-per-source", "lots"),
                ("--udp-bytes-per-source", "1e3"),
            ],
        )

    def test_udpOptions(self) -> None:
        """
        C{--listen udp:...}, the UDP limits and C{--plain} reach the
        settings; the documented defaults otherwise.
        """
        options = self.parse(
            "--listen", "udp:9527", "--udp-rate", "0", "--udp-rate-per-source", "5", "--plain"
        )
        settings = options.settings
        self.assertEqual(settings.listen, ("udp:9527",))
        self.assertEqual((settings.udpRate, settings.udpRatePerSource), (0, 5))
        self.assertEqual(settings.udpBytesPerSource, 1000000)
        self.assertTrue(settings.plain)
        defaults = self.parse().settings
        self.assertEqual(
            (defaults.udpRatePerSource, defaults.udpBytesPerSource, defaults.udpRate),
            (1000, 1000000, 10000),
        )
        self.assertFalse(defaults.plain)

    def test_udpService(self) -> None:
        """
        The service built for C{--listen udp:...} echoes datagrams with the
        limits and C{--plain} the options give.
        """
        options = self.parse("--listen", "udp:9527", "--udp-rate-per-source", "5", "--plain")
        command = twistdServer.makeService(options, MemoryReactorClock())
        datagrams = command.server.datagrams
        self.assertEqual(datagrams.admission.perSource, 5)
        self.assertEqual(datagrams.buildProtocol().transform(b"ab"), b"ab")

    def test_asciiNumbersOnly(self) -> None:
        """
        Numbers are written in ASCII digits: other scripts' digits and
        Python's C{1_000}, which C{int} and C{float} take, are usage errors
        naming the option; blanks and a sign are fine.
        """
        assertUsageErrorsName(
            self,
            self.parse,
            [
                ("--max-connections", "\u0661\u0660"),
                ("--max-connections", "1_000"),
                ("--max-per-ip", "\uff12"),
                ("--workers", "\u0662"),
                ("--idle-timeout", "1_0"),
                ("--shutdown-timeout", "\u0665"),
                ("--idle-timeout", "inf"),
            ],
        )
        options = self.parse("--max-connections", " +7 ", "--idle-timeout", "1e1")
        self.assertEqual((options["max-connections"], options["idle-timeout"]), (7, 10.0))

    def test_loneBackslash(self) -> None:
        """
        An endpoint ending in a lone backslash (which would swallow the
        added backlog) is a usage error that says so.
        """
        for option in ("--listen", "--metrics"):
            error = self.assertRaises(usage.UsageError, self.parse, option, "tcp:\\")
            self.assertIn("ends with a lone backslash", str(error))

    def test_unknownOption(self) -> None:
        """
        An unknown option is a usage error.
        """
        self.assertRaises(usage.UsageError, self.parse, "--nosuch")

    def test_oneLineErrors(self) -> None:
        """
        The options twistd uses print one line (and a hint) instead of the
        whole help, and exit with status 2.
        """
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        error = self.assertRaises(
            SystemExit, twistdServer.Options().parseOptions, ["--max-per-ip", "x"]
        )
        self.assertEqual(error.code, 2)
        first, hint = stderr.getvalue().splitlines()
        self.assertEqual(first, "twistd uppercase: --max-per-ip must be a whole number, not 'x'")
        self.assertIn("--help", hint)

    def test_errorsNameTheRunner(self) -> None:
        """
        Under C{twist}, Twisted's foreground runner, a usage error names
        C{twist uppercase}, the command the person typed.
        """
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.patch(sys, "argv", ["/usr/local/bin/twist", "uppercase", "--max-per-ip", "x"])
        self.assertRaises(SystemExit, twistdServer.Options().parseOptions, ["--max-per-ip", "x"])
        self.assertTrue(stderr.getvalue().startswith("twist uppercase: --max-per-ip"))
        self.assertIn("Try 'twist uppercase --help'", stderr.getvalue())

    def helpUsageLine(self, argv0: str, parent: usage.Options) -> str:
        """
        The C{Usage:} line of the server's help with C{sys.argv[0]} set to
        C{argv0}, under C{parent} as the runner's options.
        """
        self.patch(sys, "argv", [argv0, "uppercase", "--help"])
        options = twistdServer.Options()
        options.parent = parent
        parent.subCommand = "uppercase"
        return str(options).splitlines()[0]

    def test_helpUsageNamesTwist(self) -> None:
        """
        Under C{twist}, the help's usage line says C{twist uppercase}, not
        Twisted's C{twist [options] plugin [plugin_options] uppercase}.
        """
        from twisted.application.twist._options import TwistOptions

        line = self.helpUsageLine("/usr/local/bin/twist", TwistOptions())
        self.assertEqual(line, "Usage: twist uppercase " + ServerOptions.synopsis)

    def test_helpUsageNamesModule(self) -> None:
        """
        Under C{python -m uppercase} (which runs twistd with C{sys.argv[0]}
        set to that), the help's usage line says C{python -m uppercase}.
        """
        from twisted.scripts.twistd import ServerOptions as TwistdOptions

        line = self.helpUsageLine("python -m uppercase", TwistdOptions())
        self.assertEqual(line, "Usage: python -m uppercase " + ServerOptions.synopsis)

    def test_helpUsageUnderTwistd(self) -> None:
        """
        Under C{twistd}, the help's usage line stays twistd's own:
        C{twistd [options] uppercase ...}.
        """
        from twisted.scripts.twistd import ServerOptions as TwistdOptions

        line = self.helpUsageLine("/usr/bin/twistd", TwistdOptions())
        self.assertEqual(line, "Usage: twistd [options] uppercase " + ServerOptions.synopsis)

    def test_helpIntoClosedPipe(self) -> None:
        """
        C{--help} and C{--version} whose output meets a closed pipe exit
        with status 141 (as SIGPIPE ends C{cat}), without a traceback or
        any line on standard error.
        """
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.patch(sys, "stdout", _FailingOutput(BrokenPipeError(32, "Broken pipe")))
        for options in (twistdServer.Options, twistdClient.Options):
            for flag in ("--help", "--version"):
                error = self.assertRaises(SystemExit, options().parseOptions, [flag])
                self.assertEqual(error.code, 141)
        self.assertEqual(stderr.getvalue(), "")

    def test_helpIntoFullDisk(self) -> None:
        """
        C{--help} whose output cannot be written (a full disk) is one line
        on standard error and status 1.
        """
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        self.patch(sys, "stdout", _FailingOutput(OSError(28, "No space left on device")))
        error = self.assertRaises(SystemExit, twistdServer.Options().parseOptions, ["--help"])
        self.assertEqual(error.code, 1)
        self.assertEqual(
            stderr.getvalue(),
            "twistd uppercase: cannot write the output: No space left on device\n",
        )

    def test_helpExamplesParse(self) -> None:
        """
        Every endpoint the help shows that needs no files or sockets of its
        own parses (TLS and systemd examples are run by the process tests,
        with a certificate and with systemd's socket activator).
        """
        examples = re.findall(
            r"(?:haproxy:)?(?:tcp6?|unix|ssl|systemd):[^,;)\s]+", ServerOptions.longdesc
        )
        self.assertGreaterEqual(len(examples), 7, examples)
        for example in examples:
            if example.startswith(("ssl:", "systemd:")):
                continue
            checkServerEndpoint(example)

    def test_version(self) -> None:
        """
        C{--version} prints uppercase's version (with Twisted's and Python's
        beside it) and exits 0.
        """
        from twisted import __version__ as twistedVersion
        from uppercase import __version__

        for options in (twistdServer.Options, twistdClient.Options):
            stdout = io.StringIO()
            self.patch(sys, "stdout", stdout)
            error = self.assertRaises(SystemExit, options().parseOptions, ["--version"])
            self.assertEqual(error.code, 0)
            line = stdout.getvalue().strip()
            self.assertTrue(line.startswith(f"uppercase {__version__} (Twisted "), line)
            self.assertIn(twistedVersion, line)


class ServerServiceTests(SynchronousTestCase):
    """
    The shape of the service C{makeService} builds, without starting it.
    """

    def test_wiring(self) -> None:
        """
        The options become one L{UppercaseFactory} and one
        L{UppercaseService} listening on every C{--listen}, under a command
        service that adds signal handling; nothing listens yet.
        """
        options = twistdServer.ServerOptions()
        options.parseOptions(
            [
                "-l",
                "tcp:0",
                "-l",
                "tcp:0:interface=127.0.0.1",
                "--quiet",
                "--idle-timeout",
                "7",
                "--max-per-ip",
                "3",
                "--shutdown-timeout",
                "4",
            ]
        )
        reactor = MemoryReactorClock()
        command = twistdServer.makeService(options, reactor=reactor)
        service = command.server
        self.assertIsInstance(service, UppercaseService)
        self.assertEqual(service.descriptions, ["tcp:0", "tcp:0:interface=127.0.0.1"])
        factory = service.factory
        self.assertFalse(factory.logData)
        self.assertEqual(factory.idleTimeout, 7.0)
        self.assertEqual(factory.admission.maxPerIP, 3)
        self.assertEqual((service.shutdownTimeout, factory.closeTimeout), (4.0, 4.0))
        self.assertIs(factory.clock, reactor)
        self.assertEqual([type(s) for s in command], [UppercaseService, SignalHandling])
        self.assertEqual(reactor.tcpServers, [])

    def test_control(self) -> None:
        """
        C{--control} listens (once started) with the control API over the
        server's own faults: a fault posted to it is the factory's.
        """
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        options = twistdServer.ServerOptions()
        options.parseOptions(["-l", "tcp:0", "--control", "tcp:9528:interface=127.0.0.1"])
        reactor = MemoryReactorClock()
        command = twistdServer.makeService(options, reactor=reactor)
        self.assertEqual(command.server.control, "tcp:9528:interface=127.0.0.1")
        command.privilegedStartService()
        (control,) = [(f, i) for p, f, _, i in reactor.tcpServers if p == 9528]
        self.assertEqual(control[1], "127.0.0.1")
        peer = IPv4Address("TCP", "127.0.0.1", 5000)
        protocol = control[0].buildProtocol(peer)
        assert protocol is not None
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        body = b'{"spec": "latency,delay=20ms"}'
        protocol.dataReceived(
            b"POST /faults HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 201 "), transport.value())
        self.assertEqual(
            [spec.describe() for _, spec in command.server.factory.faults.list()],
            ["latency,delay=20ms"],
        )

    def test_controlWithWorkers(self) -> None:
        """
        With C{--workers}, the supervisor serves C{--control} (a listener of
        its own) and its workers are not told to.
        """
        from uppercase.server._service import NamedListener

        options = twistdServer.ServerOptions()
        options.parseOptions(
            ["-l", "tcp:0", "--workers", "2", "--control", "tcp:9528:interface=127.0.0.1"]
        )
        reactor = MemoryReactorClock()
        reactor.spawnProcess = lambda *args, **kwargs: None  # type: ignore[attr-defined]
        command = twistdServer.makeService(options, reactor=reactor)
        listeners = [s for s in command if isinstance(s, NamedListener)]
        self.assertEqual(
            [(s.description, s.purpose) for s in listeners],
            [("tcp:9528:interface=127.0.0.1", "control")],
        )
        self.assertNotIn("--control", command.server._workerArgs)

    def test_listenFailureIsOneLine(self) -> None:
        """
        A port that cannot be bound raises L{CannotStart} out of the command
        service (so that twistd removes its pid file and reports it), logs
        it, and makes it the one line Python prints on standard error when
        it ends the process, instead of a traceback.
        """
        import socket

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        options = twistdServer.ServerOptions()
        description = f"tcp:{port}:interface=127.0.0.1"
        options.parseOptions(["-l", description])
        from twisted.internet import reactor

        command = twistdServer.makeService(options, reactor=reactor)
        self.patch(sys, "excepthook", sys.excepthook)
        with capturedLogs() as events:
            error = self.assertRaises(CannotStart, command.privilegedStartService)
        line = f"twistd uppercase: cannot listen on {description}: Address already in use"
        self.assertEqual(events[0]["log_format"].format(**events[0]), line)
        stderr = io.StringIO()
        self.patch(sys, "__stderr__", stderr)
        sys.excepthook(CannotStart, error, None)
        self.assertEqual(stderr.getvalue(), line + "\n")


def keepSignals(test: SynchronousTestCase) -> None:
    """
    Put back, after C{test}, the handlers of the signals start-up holds off
    (loading the server plugin's options changes them), and set them to
    their default action for it.
    """
    for name in earlysignals.EARLY:
        number = getattr(signal, name)
        test.addCleanup(signal.signal, number, signal.getsignal(number))
        signal.signal(number, signal.SIG_DFL)


class PluginTests(SynchronousTestCase):
    """
    Both plugins are found by twistd's plugin scan in the installed package.
    """

    def setUp(self) -> None:
        keepSignals(self)

    def test_pluginsRegistered(self) -> None:
        """
        C{uppercase} and C{uppercase-client} are twistd plugins whose options
        and services come from the tap modules.
        """
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("uppercase", makers)
        self.assertIn("uppercase-client", makers)
        self.assertIs(makers["uppercase"].options, twistdServer.Options)
        self.assertIs(makers["uppercase-client"].options, twistdClient.Options)

    def test_pluginFolderIsANamespacePortion(self) -> None:
        """
        C{twisted/} and C{twisted/plugins/} in the project have no
        C{__init__.py} (which would shadow Twisted's own packages), and the
        plugin module is not named like the package.
        """
        import os

        root = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        )
        self.assertFalse(os.path.exists(os.path.join(root, "twisted", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(root, "twisted", "plugins", "__init__.py")))
        plugins = os.listdir(os.path.join(root, "twisted", "plugins"))
        self.assertIn("uppercase_plugins.py", plugins)
        self.assertNotIn("uppercase.py", plugins)


class FaultBoundOptionTests(SynchronousTestCase):
    """
    The bounds of C{--fault} at start.
    """

    def test_tooMany(self) -> None:
        """
        More than L{MAX_FAULTS} C{--fault}s: one usage error (exit 2)
        saying the bound.
        """
        ServerOptions().parseOptions(["--fault", "refuse"] * MAX_FAULTS)
        error = self.assertRaises(
            usage.UsageError, ServerOptions().parseOptions, ["--fault", "refuse"] * (MAX_FAULTS + 1)
        )
        self.assertEqual(str(error), "--fault: at most 64 faults, not 65")

    def test_tooLong(self) -> None:
        """
        A C{--fault} over L{MAX_SPEC_LENGTH} characters: one usage error
        showing the start of the spec, not all of it.
        """
        text = "latency,delay=1ms,on=/" + "x" * MAX_SPEC_LENGTH
        error = str(
            self.assertRaises(usage.UsageError, ServerOptions().parseOptions, ["--fault", text])
        )
        self.assertEqual(
            error,
            f"--fault {text[:60] + '...'!r}: latency: a fault is at most 512 characters, not 534",
        )
