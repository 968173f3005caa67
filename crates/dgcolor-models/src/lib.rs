//! Networks of "Bridging the Domain Gap Towards Generalization in Automatic Colorization"
//! (Lee et al., ECCV 2022; reference code Lhyejin/DG-Colorization): a pix2pix U-Net whose
//! encoder is split into a head (levels 1..3) and a tail (levels 4..D), a class head, a style
//! discriminator and a PatchGAN colour discriminator.
//!
//! Parameter names follow the reference's PyTorch modules (`down2.conv.weight`,
//! `up3.bn.running_var`, `layer.0.weight`) under one prefix per network ([`prefix`]), so a
//! checkpoint maps one to one onto the reference's state dicts.

mod adain;
mod batch_norm;
mod blocks;
mod config;
mod heads;
mod inference;
mod init;
mod mode;
pub mod pth;
pub mod reference;
mod unet;

pub use adain::{
    adain, channel_stats, content_randomize, style_randomize, ChannelStats, ADAIN_EPS,
};
pub use batch_norm::{batch_norm2d, BatchNorm2d};
pub use blocks::{
    down_block, up_block, DownBlock, DownConfig, UpBlock, UpConfig, UpOut, LEAKY_SLOPE,
};
pub use config::{level_width, AdainSkip, ModelConfig};
pub use heads::{ClassHead, ColorDiscriminator, MlpHead, StyleDiscriminator};
pub use inference::{AbPredictor, InferenceGenerator};
pub use init::init_weights;
pub use mode::Mode;
pub use pth::write_pth;
pub use reference::{
    export_reference, import_reference, read_state_dict, reference_layout, RefFile,
};
pub use unet::{Decoder, Encoded, Generator, HeadEncoder, Levels, TailEncoder};

/// VarMap prefixes of the networks, so each optimizer can take its own sub-network.
pub mod prefix {
    pub const HEAD: &str = "head";
    pub const TAIL: &str = "tail";
    pub const DECODER: &str = "decoder";
    pub const CLASS_HEAD: &str = "class_head";
    pub const STYLE_DISC: &str = "style_disc";
    pub const COLOR_DISC: &str = "color_disc";
}
