"""The classic MNIST convolutional network (the Keras example), built reproducibly."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # untyped (see pyproject.toml), imported lazily: the module stays importable without it
    import keras

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def build_model(
    input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10, dropout: float = 0.5
) -> keras.Sequential:
    """Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool -> Flatten -> (Dropout) -> Dense 10 softmax.

    Dropout is only active while training, so the served graph is exactly the classic CNN.
    """
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name=INPUT_NAME),
            keras.layers.Conv2D(32, kernel_size=3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(pool_size=2, name="pool1"),
            keras.layers.Conv2D(64, kernel_size=3, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(pool_size=2, name="pool2"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dropout(dropout, name="dropout"),
            keras.layers.Dense(num_classes, activation="softmax", name="dense"),
        ],
        name="mnist_cnn",
    )


def compile_model(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Adam + sparse categorical cross-entropy, tracking accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
