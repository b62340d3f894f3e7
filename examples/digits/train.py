"""A real training job to tune: a small neural network on scikit-learn's bundled digits data.

It runs on its own (``python train.py --hidden 64``) and under hyperscout, which passes the
parameters as ``--name value`` and reads the validation accuracy reported after every epoch.
"""

from __future__ import annotations

import argparse
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from hyperscout import report_scalar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, default=32, help="units in the hidden layer")
    parser.add_argument("--learning_rate_init", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=args.seed, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,),
        learning_rate_init=args.learning_rate_init,
        alpha=args.alpha,
        batch_size=args.batch_size,
        max_iter=1,
        random_state=args.seed,
    )
    classes = sorted(set(y))
    for epoch in range(1, args.epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)
        accuracy = model.score(x_val, y_val)
        report_scalar("validation", "accuracy", accuracy, iteration=epoch)
        report_scalar("train", "loss", model.loss_, iteration=epoch)
        print(f"epoch {epoch:3d}  loss {model.loss_:.4f}  val_acc {accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
