"""The chaos summary table: rows travel in each test's report (user_properties), so it works with pytest-xdist."""

from __future__ import annotations

CHAOS_ROW = "chaos_row"
HEADER = ("scenario", "produced", "expected", "delivered", "lost", "duplicated", "recovery", "notes")


class ChaosTable:
    """A plugin of the process that prints (xdist's controller, or pytest itself): gathers rows, prints one table."""

    def __init__(self) -> None:
        """No rows yet."""
        self.rows: list[dict] = []

    def pytest_runtest_logreport(self, report) -> None:
        """Keep the rows a scenario recorded (they ride on its teardown report, once per test)."""
        if report.when == "teardown":
            self.rows.extend(value for name, value in report.user_properties if name == CHAOS_ROW)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """Print one table of every scenario that ran."""
        if not self.rows:
            return
        lines = [
            (
                r["scenario"],
                str(r["produced"]),
                str(r["expected"]),
                str(r["delivered"]),
                str(r["lost"]),
                str(r["duplicated"]),
                "-" if r["recovery_s"] is None else f"{r['recovery_s']:.2f} s",
                r["notes"],
            )
            for r in self.rows
        ]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(HEADER)]

        def fmt(cells):
            return " | ".join(c.ljust(w) if i in (0, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        terminalreporter.write_sep("=", "chaos: signals from production to every client")
        terminalreporter.write_line(fmt(HEADER))
        terminalreporter.write_line("-+-".join("-" * w for w in widths))
        for line in lines:
            terminalreporter.write_line(fmt(line))
