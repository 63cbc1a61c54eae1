"""``python -m nova_xloud.demo RELEASE [--full-xml]``: the demo, here."""

import logging
import sys
import warnings


def main():
    # Before Nova is imported: its import-time log lines and eventlet's
    # deprecation warning are not part of the demo; Nova's test fixtures
    # capture its logs while it runs.
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
    from nova_xloud.demo import scenario
    return scenario.main()


if __name__ == '__main__':
    sys.exit(main())
