"""``python -m nova_xloud.demo RELEASE [--full-xml]``: the demo, here."""

import logging
import sys
import warnings


def main():
    # Before Nova is imported: its import-time log lines and the warnings
    # of the libraries under it (eventlet's deprecation, pkg_resources on
    # 2024.1) are not part of the demo; Nova's test fixtures capture its
    # logs while it runs.
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger().setLevel(logging.ERROR)
    warnings.simplefilter('ignore')
    from nova_xloud.demo import scenario
    return scenario.main()


if __name__ == '__main__':
    sys.exit(main())
