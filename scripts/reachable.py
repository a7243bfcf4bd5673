"""Exit 0 when URL's server answers (any HTTP status), 1 when it cannot be reached in time.

Used by scripts/install.sh before asking PyTorch's own index for a build: a machine that reaches
only PyPI (or a mirror) says so in one line and takes PyPI's build instead of failing.
"""

import sys
import urllib.error
import urllib.request

TIMEOUT_S = 10


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return True  # the server answered, if only with an error status
    except (OSError, ValueError):
        return False  # no name, no route, refused, timed out, or not a URL
    return True


if __name__ == "__main__":
    sys.exit(0 if reachable(sys.argv[1]) else 1)
