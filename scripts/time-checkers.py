"""How long each exercise's checker takes on labcore's reference pieces (median of 3 runs).

    .venv/bin/python scripts/time-checkers.py

Run it on an idle machine; it prints one line per checker and the machine's load average.
"""

import os
import statistics
import time

from labcore import attention
from labcore.checkers import (check_attention, check_decode_step, check_encode_to_z, check_frechet_distance,
                              check_gamma, check_masking, check_training_loop, reference_configure_optimizers,
                              reference_encode_to_z, reference_frechet_distance, reference_mask_tokens,
                              reference_masked_loss, reference_train_one_epoch)
from labcore.decoding import decode_step
from labcore.schedules import gamma

CHECKS = {
    "attention": lambda: check_attention(attention.MultiHeadAttention),
    "encode": lambda: check_encode_to_z(reference_encode_to_z),
    "gamma": lambda: check_gamma(gamma),
    "masking": lambda: check_masking(reference_mask_tokens, reference_masked_loss),
    "loop": lambda: check_training_loop(reference_configure_optimizers, reference_train_one_epoch),
    "decode": lambda: check_decode_step(decode_step),
    "frechet": lambda: check_frechet_distance(reference_frechet_distance),
}


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for name, check in CHECKS.items():
        times, passed = [], True
        for _ in range(3):
            t0 = time.perf_counter()
            passed &= check().passed
            times.append(time.perf_counter() - t0)
        print(f"{name:10} {'passes' if passed else 'FAILS '}  median {statistics.median(times) * 1000:8.1f} ms")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
