"""Constructor arguments of the wrong kind (an array or list for a string, a flag or an
int) raise an error naming the layer and the argument, never NumPy's "truth value of an
array is ambiguous" nor a silent acceptance; NumPy scalars that PyTorch takes as ints or
bools still pass."""

import numpy as np
import pytest

import backprop as bp

ARRAY2 = np.array([1, 2])
STRINGS = np.array(["none", "tanh"])
FLAGS = np.array([True, False])


def _rnn(kind):
    return lambda **kw: getattr(bp, kind)(3, 4, **kw)


def _mha(**kw):
    return bp.MultiheadAttention(4, 2, **kw)


STRING_CHOICES = [  # (make, message): a ValueError, as for a misspelt name
    (lambda v: bp.GELU(approximate=v), r"^GELU: expected approximate 'none' or 'tanh', got "),
    (lambda v: bp.Upsample(scale_factor=2, mode=v), r"^Upsample: expected mode 'nearest', "),
    (lambda v: bp.RNN(3, 4, nonlinearity=v), r"^RNN: expected nonlinearity 'tanh' or 'relu', "),
]


@pytest.mark.parametrize("make, message", STRING_CHOICES)
@pytest.mark.parametrize("value", [STRINGS, ARRAY2, FLAGS, np.array(["tanh"]), ["tanh", "relu"]],
                         ids=["str-array", "int-array", "bool-array", "1-str-array", "list"])
def test_string_choice_given_an_array_names_layer_and_argument(make, message, value):
    with pytest.raises(ValueError, match=message + r".*(array\(|\[)"):
        make(value)


RNN_OPTIONS = [  # (argument, message for a value of the wrong kind)
    ("num_layers", r"expected num_layers to be a positive int, got "),
    ("bidirectional", r"expected bidirectional to be True or False, got "),
    ("dropout", r"expected dropout to be a number, got "),
    ("proj_size", r"expected proj_size to be an int >= 0, got "),
]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("name, message", RNN_OPTIONS)
@pytest.mark.parametrize("value", [ARRAY2, FLAGS, STRINGS, np.array([1]), np.array(0), [1, 2]],
                         ids=["int-array", "bool-array", "str-array", "1-array", "0-d", "list"])
def test_recurrent_torch_option_given_an_array_is_a_type_error(kind, name, message, value):
    with pytest.raises(TypeError, match=rf"^{kind}: {message}"):
        _rnn(kind)(**{name: value})


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("name, value", [("num_layers", 1.0), ("num_layers", np.bool_(True)),
                                         ("num_layers", None), ("bidirectional", None),
                                         ("bidirectional", 0), ("dropout", None),
                                         ("dropout", True), ("proj_size", 0.0),
                                         ("proj_size", None)])
def test_recurrent_torch_option_of_another_kind_is_refused_not_read_as_default(kind, name,
                                                                               value):
    with pytest.raises(TypeError, match=rf"^{kind}: expected {name} to be "):
        _rnn(kind)(**{name: value})


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_recurrent_dropout_outside_0_1_says_its_range(kind):
    with pytest.raises(ValueError, match=rf"^{kind}: expected dropout in \[0\.0, 1\.0\]"):
        _rnn(kind)(dropout=2.0)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_recurrent_numpy_scalars_of_the_defaults_are_accepted(kind):
    layer = _rnn(kind)(num_layers=np.int64(1), bidirectional=np.bool_(False),
                       dropout=np.float64(0.0), proj_size=np.int64(0),
                       batch_first=np.bool_(True))
    assert layer.hidden_size == 4


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("name, value, message", [
    ("num_layers", np.int64(2), r"expected num_layers=1, got 2; stack layers"),
    ("bidirectional", np.bool_(True), r"expected bidirectional=False .* Bidirectional\("),
    ("dropout", np.float64(0.25), r"expected dropout=0, got 0\.25; put a Dropout layer"),
    ("proj_size", np.int64(2), r"expected proj_size=0 .* Dense\(H, 2\)"),
])
def test_recurrent_numpy_scalar_beyond_one_layer_gets_the_usual_hint(kind, name, value,
                                                                     message):
    with pytest.raises(ValueError, match=rf"^{kind}: {message}"):
        _rnn(kind)(**{name: value})


MHA_OPTIONS = [
    ("kdim", r"expected kdim to be a positive int, got "),
    ("vdim", r"expected vdim to be a positive int, got "),
    ("add_bias_kv", r"expected add_bias_kv to be True or False, got "),
    ("add_zero_attn", r"expected add_zero_attn to be True or False, got "),
]


@pytest.mark.parametrize("name, message", MHA_OPTIONS)
@pytest.mark.parametrize("value", [ARRAY2, FLAGS, STRINGS, np.array([4]), np.array(4), [4, 4]],
                         ids=["int-array", "bool-array", "str-array", "1-array", "0-d", "list"])
def test_attention_torch_option_given_an_array_is_a_type_error(name, message, value):
    with pytest.raises(TypeError, match=rf"^MultiheadAttention: {message}"):
        _mha(**{name: value})


@pytest.mark.parametrize("name, value", [("kdim", 4.0), ("vdim", True), ("add_bias_kv", None),
                                         ("add_zero_attn", 0)])
def test_attention_torch_option_of_another_kind_is_refused(name, value):
    with pytest.raises(TypeError, match=rf"^MultiheadAttention: expected {name} to be "):
        _mha(**{name: value})


def test_attention_numpy_scalars_of_the_defaults_are_accepted():
    layer = _mha(kdim=np.int64(4), vdim=np.int64(4), add_bias_kv=np.bool_(False),
                 add_zero_attn=np.bool_(False))
    assert layer.embed_dim == 4
    with pytest.raises(ValueError, match=r"^MultiheadAttention: expected kdim=None .* got "
                                         r"kdim=3$"):
        _mha(kdim=np.int64(3))
    with pytest.raises(ValueError, match=r"^MultiheadAttention: expected add_bias_kv=False"):
        _mha(add_bias_kv=np.bool_(True))


@pytest.mark.parametrize("make", [lambda: bp.GELU(approximate=np.str_("tanh")),
                                  lambda: bp.Upsample(scale_factor=2, mode=np.str_("linear")),
                                  lambda: bp.RNN(3, 4, nonlinearity=np.str_("relu"))])
def test_numpy_strings_are_strings(make):
    make()
