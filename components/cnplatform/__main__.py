"""``python -m cnplatform``: the component provider of an installed library (see :mod:`cnplatform.provider`)."""
from cnplatform.provider import main

if __name__ == "__main__":
    main()
