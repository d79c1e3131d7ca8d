"""Writing the integration tests' generated trees (the python3 heredocs of
tests/integ/*.sh; lib.sh puts this directory on PYTHONPATH)."""
import os


def writer(root):
    """w(rel, data=b"", mode=0o644): write root/rel, making its directories."""
    def w(rel, data=b"", mode=0o644):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
    return w
